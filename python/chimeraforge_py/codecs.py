"""Sans-IO stream codecs (bytes in, events out), mirroring crates/core/src/api.

The codecs never do I/O and never read the clock: the caller timestamps each chunk before
feeding it. Bytes are kept until a line is complete, so a UTF-8 character split across two
chunks is reassembled before it is decoded. Memory is bounded by ``max_line_bytes``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Optional, Union


# --- events -------------------------------------------------------------------------------


@dataclass
class ServerStats:
    """Server-reported figures of one call (core::api::ServerStats)."""

    output_tokens: Optional[int] = None
    prompt_tokens: Optional[int] = None
    eval_ms: Optional[float] = None
    prompt_eval_ms: Optional[float] = None
    load_ms: Optional[float] = None
    total_ms: Optional[float] = None
    done_reason: Optional[str] = None
    # of output_tokens, those spent reasoning (usage.completion_tokens_details.reasoning_tokens)
    reasoning_tokens: Optional[int] = None
    # Prompt tokens served from the server's prompt cache (llama.cpp timings.cache_n,
    # usage.prompt_tokens_details.cached_tokens, Ollama prompt_eval_cached_count).
    cached_prompt_tokens: Optional[int] = None
    # The server's own rate field (llama.cpp timings.predicted_per_second), tok/s.
    reported_decode_tok_s: Optional[float] = None

    def decode_tok_s(self) -> Optional[float]:
        """The rate as the server defines it: its own field where it sends one, else
        output tokens / eval time (Ollama's eval_count / eval_duration), as in core."""
        r = self.reported_decode_tok_s
        if r is not None and r > 0.0 and r != float("inf"):
            return r
        if self.output_tokens is not None and self.eval_ms is not None and self.eval_ms > 0.0:
            return self.output_tokens / (self.eval_ms / 1e3)
        return None

    def merge(self, other: "ServerStats") -> None:
        """Fields ``other`` sets replace ours (later chunks may add what earlier lacked)."""
        for f in fields(self):
            v = getattr(other, f.name)
            if v is not None:
                setattr(self, f.name, v)

    def to_json(self) -> dict:
        # skip_serializing_if = "Option::is_none" on every field
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}


@dataclass
class Text:
    """Generated text (may be empty: some servers send empty keep-alive deltas)."""

    text: str


@dataclass
class Reasoning:
    """Generated reasoning text, never empty: Ollama ``thinking`` / ``message.thinking``,
    OpenAI-compatible ``delta.reasoning_content`` / ``delta.reasoning``."""

    text: str


@dataclass
class ToolCallChunk:
    """A generated tool call, or a fragment of one (core::api::ToolCallChunk): OpenAI
    ``delta.tool_calls[]`` (one event per entry, ``index`` set, arguments in fragments),
    Ollama ``message.tool_calls[]`` (each call whole, ``index`` None, its arguments object
    serialized as serde_json writes it)."""

    index: Optional[int] = None
    id: Optional[str] = None
    name: Optional[str] = None
    arguments: str = ""


@dataclass
class Stats:
    stats: ServerStats


@dataclass
class Done:
    reason: Optional[str] = None


@dataclass
class ServerError:
    message: str


StreamEvent = Union[Text, Reasoning, ToolCallChunk, Stats, Done, ServerError]


class ToolCallAssembly:
    """Whole tool calls from chunks, in the order the calls began (core::api::ToolCallAssembly):
    a fragment joins the earlier call with its index (arguments appended, id and name kept
    from the first fragment that had them); anything else starts a call."""

    def __init__(self) -> None:
        self.calls: list = []  # [id, name, arguments]
        self.indices: list = []

    def push(self, chunk: ToolCallChunk) -> None:
        at = None
        if chunk.index is not None:
            for i, have in enumerate(self.indices):
                if have == chunk.index:
                    at = i
                    break
        if at is None:
            self.calls.append(["", "", ""])
            self.indices.append(chunk.index)
            at = len(self.calls) - 1
        call = self.calls[at]
        if chunk.id and not call[0]:
            call[0] = chunk.id
        if chunk.name and not call[1]:
            call[1] = chunk.name
        call[2] += chunk.arguments

    def __len__(self) -> int:
        return len(self.calls)

    def into_calls(self) -> list:
        """``[{"id","name","arguments"}]``; a call the server sent no id for is ``call_<position>``."""
        return [
            {"id": c[0] or f"call_{i}", "name": c[1], "arguments": c[2]}
            for i, c in enumerate(self.calls)
        ]


# --- errors -------------------------------------------------------------------------------


class CodecError(Exception):
    """A stream the codec could not make sense of. ``kind`` is the CallErrorKind it maps to."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind
        self.message = message


def line_too_long(limit: int) -> CodecError:
    return CodecError(
        "line_too_long",
        f"a line exceeded {limit} bytes (the stream is not what the API promises, or raise max_line_bytes)",
    )


def invalid_utf8(line: int) -> CodecError:
    return CodecError("invalid_utf8", f"invalid UTF-8 in the stream at line {line}")


def malformed_json(line: int, reason: str) -> CodecError:
    return CodecError("malformed_stream", f"malformed JSON at line {line}: {reason}")


def malformed_tool_call(line: int, reason: str) -> CodecError:
    return CodecError("malformed_stream", f"malformed tool call at line {line}: {reason}")


def truncated_line(nbytes: int) -> CodecError:
    return CodecError(
        "malformed_stream", f"the stream ended in the middle of a line ({nbytes} bytes pending)"
    )


# --- lines --------------------------------------------------------------------------------


class LineSplitter:
    """Yields complete ``\\n``-terminated lines (without ``\\r\\n``/``\\n``), bounded."""

    def __init__(self, max_line_bytes: int):
        self.buf = bytearray()
        self.max_line_bytes = max_line_bytes
        self.lines_seen = 0

    def feed(self, chunk: bytes, on_line: Callable[[bytes, int], None]) -> None:
        start = 0
        while True:
            pos = chunk.find(b"\n", start)
            if pos < 0:
                break
            head = chunk[start:pos]
            start = pos + 1
            self.lines_seen += 1
            if not self.buf:
                self._check_len(len(head))
                on_line(_trim_cr(bytes(head)), self.lines_seen)
            else:
                self._check_len(len(self.buf) + len(head))
                self.buf += head
                line = bytes(self.buf)
                self.buf = bytearray()
                on_line(_trim_cr(line), self.lines_seen)
        rest = chunk[start:]
        self._check_len(len(self.buf) + len(rest))
        self.buf += rest

    def take_rest(self) -> bytes:
        rest = bytes(self.buf)
        self.buf = bytearray()
        return rest

    def _check_len(self, n: int) -> None:
        if n > self.max_line_bytes:
            raise line_too_long(self.max_line_bytes)


def _trim_cr(line: bytes) -> bytes:
    return line[:-1] if line.endswith(b"\r") else line


# --- typed access to parsed JSON (serde's strictness, so both sides reject the same) -------


class _Bad(Exception):
    pass


def _type_name(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return f"boolean `{str(v).lower()}`"
    if isinstance(v, (int, float)):
        return f"number `{v}`"
    if isinstance(v, str):
        return f"string {json.dumps(v)}"
    if isinstance(v, list):
        return "sequence"
    return "map"


def _opt_str(obj: dict, key: str) -> Optional[str]:
    v = obj.get(key)
    if v is None or isinstance(v, str):
        return v
    raise _Bad(f"invalid type: {_type_name(v)}, expected a string for `{key}`")


def _opt_u64(obj: dict, key: str) -> Optional[int]:
    v = obj.get(key)
    if v is None:
        return None
    if isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**64:
        return v
    raise _Bad(f"invalid value: {_type_name(v)}, expected u64 for `{key}`")


def _opt_f64(obj: dict, key: str) -> Optional[float]:
    v = obj.get(key)
    if v is None:
        return None
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v)
    raise _Bad(f"invalid type: {_type_name(v)}, expected f64 for `{key}`")


def _opt_obj(obj: dict, key: str) -> Optional[dict]:
    v = obj.get(key)
    if v is None or isinstance(v, dict):
        return v
    raise _Bad(f"invalid type: {_type_name(v)}, expected a map for `{key}`")


def _parse_object(text: str) -> dict:
    try:
        v = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as e:
        raise _Bad(str(e)) from None
    if not isinstance(v, dict):
        raise _Bad(f"invalid type: {_type_name(v)}, expected a map")
    return v


def _compact(v: Any) -> str:
    """serde_json::Value's Display: compact JSON."""
    return json.dumps(v, separators=(",", ":"), ensure_ascii=False)


def _json_type(v: Any) -> str:
    """A JSON value's type in words, as core's tool-call errors name it."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, (int, float)):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list):
        return "an array"
    return "an object"


def _tool_str(obj: dict, key: str, what: str) -> Optional[str]:
    """``obj[key]`` as an optional string; another type raises _BadTool naming ``what``."""
    v = obj.get(key)
    if v is None or isinstance(v, str):
        return v
    raise _BadTool(f"{what} is {_json_type(v)}, not a string")


class _BadTool(Exception):
    pass


def _ollama_tool_calls(calls: Any) -> list:
    """The calls of ``message.tool_calls`` (``[{id?, function: {index?, name, arguments}}]``),
    each one whole, its arguments object serialized (core's ollama::tool_call_chunks)."""
    if calls is None:
        return []
    if not isinstance(calls, list):
        raise _BadTool(f"message.tool_calls is {_json_type(calls)}, not an array of calls")
    chunks = []
    for i, call in enumerate(calls):
        at = f"message.tool_calls[{i}]"
        if not isinstance(call, dict):
            raise _BadTool(f"{at} is {_json_type(call)}, not an object")
        id_ = _tool_str(call, "id", f"{at}.id")
        function = call.get("function")
        if function is None:
            raise _BadTool(f"{at} has no function")
        if not isinstance(function, dict):
            raise _BadTool(f"{at}.function is {_json_type(function)}, not an object")
        name = _tool_str(function, "name", f"{at}.function.name")
        if not name:
            raise _BadTool(f"{at}.function has no name")
        args = function.get("arguments")
        if args is None:
            arguments = "{}"
        elif isinstance(args, str):
            # Ollama sends an object; a proxy may have turned it into the JSON text already.
            arguments = args
        elif isinstance(args, dict):
            # serde_json (no preserve_order) writes an object's keys sorted, compactly
            arguments = json.dumps(args, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
        else:
            raise _BadTool(f"{at}.function.arguments is {_json_type(args)}, not an object")
        chunks.append(ToolCallChunk(index=None, id=id_, name=name, arguments=arguments))
    return chunks


def _ns_to_ms(ns: Optional[int]) -> Optional[float]:
    return None if ns is None else ns / 1e6


# --- Ollama NDJSON ------------------------------------------------------------------------


class OllamaDecoder:
    """Ollama's streaming NDJSON (/api/generate, /api/chat): one JSON object per line."""

    def __init__(self, max_line_bytes: int = 1 << 20):
        self.lines = LineSplitter(max_line_bytes)

    def feed(self, chunk: bytes, out: list) -> None:
        self.lines.feed(chunk, lambda line, n: _ollama_line(line, n, out))

    def finish(self, out: list) -> None:
        rest = self.lines.take_rest()
        if all(b in b" \t\n\r\x0c" for b in rest):
            return
        n = self.lines.lines_seen + 1
        try:
            _ollama_line(rest, n, out)
        except CodecError as e:
            if e.message.startswith("malformed JSON"):
                raise truncated_line(len(rest)) from None
            raise


def _ollama_line(line: bytes, n: int, out: list) -> None:
    if all(b in b" \t\n\r\x0c" for b in line):
        return
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise invalid_utf8(n) from None
    try:
        obj = _parse_object(text)
        response = _opt_str(obj, "response")
        thinking = _opt_str(obj, "thinking")
        message = _opt_obj(obj, "message")
        content = _opt_str(message, "content") if message is not None else None
        message_thinking = _opt_str(message, "thinking") if message is not None else None
        tool_calls_v = message.get("tool_calls") if message is not None else None
        done_v = obj.get("done", False)
        if not isinstance(done_v, bool):
            raise _Bad(f"invalid type: {_type_name(done_v)}, expected a boolean for `done`")
        done_reason = _opt_str(obj, "done_reason")
        stats = ServerStats(
            output_tokens=_opt_u64(obj, "eval_count"),
            prompt_tokens=_opt_u64(obj, "prompt_eval_count"),
            eval_ms=_ns_to_ms(_opt_u64(obj, "eval_duration")),
            prompt_eval_ms=_ns_to_ms(_opt_u64(obj, "prompt_eval_duration")),
            load_ms=_ns_to_ms(_opt_u64(obj, "load_duration")),
            total_ms=_ns_to_ms(_opt_u64(obj, "total_duration")),
            done_reason=done_reason,
            cached_prompt_tokens=_opt_u64(obj, "prompt_eval_cached_count"),
        )
    except _Bad as e:
        raise malformed_json(n, str(e)) from None
    err = obj.get("error")
    if err is not None:
        out.append(ServerError(err if isinstance(err, str) else _compact(err)))
        return
    try:
        tool_calls = _ollama_tool_calls(tool_calls_v)
    except _BadTool as e:
        raise malformed_tool_call(n, str(e)) from None
    thought = thinking if thinking is not None else message_thinking
    reasoned = bool(thought)
    if reasoned:
        out.append(Reasoning(thought))
    piece = response if response is not None else content
    # the empty response/content beside a thought or a tool call is no keep-alive delta
    if piece is not None and not ((done_v or reasoned or tool_calls) and piece == ""):
        out.append(Text(piece))
    out.extend(tool_calls)
    if done_v:
        out.append(Stats(stats))
        out.append(Done(done_reason))


# --- OpenAI SSE ---------------------------------------------------------------------------


class SseDecoder:
    """OpenAI-compatible server-sent events: ``data:`` JSON chunks, ended by ``data: [DONE]``.

    Comments, ``event:``/``id:`` fields, multi-line ``data:``, CRLF line ends, a usage chunk
    with empty ``choices`` and llama.cpp's ``timings`` are handled as in the Rust codec.
    """

    def __init__(self, max_line_bytes: int = 1 << 20):
        self.lines = LineSplitter(max_line_bytes)
        self.data = bytearray()
        self.has_data = False
        self.finished = False
        # The index of tool-call fragments sent without one: a fragment with an id starts a
        # call, one without continues the last (core's ToolIndices).
        self.last_tool_index: Optional[int] = None
        self.next_tool_index = 0

    def _tool_index(self, index: Optional[int], has_id: bool) -> int:
        if index is None:
            index = self.last_tool_index if (self.last_tool_index is not None and not has_id) else self.next_tool_index
        self.last_tool_index = index
        self.next_tool_index = max(self.next_tool_index, index + 1)
        return index

    def _tool_call_chunks(self, calls: Any) -> list:
        """The fragments of ``delta.tool_calls`` (core's openai::tool_call_chunks)."""
        if calls is None:
            return []
        if not isinstance(calls, list):
            raise _BadTool(f"delta.tool_calls is {_json_type(calls)}, not an array of call fragments")
        chunks = []
        for i, call in enumerate(calls):
            at = f"delta.tool_calls[{i}]"
            if not isinstance(call, dict):
                raise _BadTool(f"{at} is {_json_type(call)}, not an object")
            index = call.get("index")
            if index is not None and not (isinstance(index, int) and not isinstance(index, bool) and 0 <= index < 2**64):
                raise _BadTool(f"{at}.index is {_compact(index)}, not a non-negative integer")
            id_ = _tool_str(call, "id", f"{at}.id")
            function = call.get("function")
            name = arguments = None
            if isinstance(function, dict):
                name = _tool_str(function, "name", f"{at}.function.name")
                try:
                    arguments = _tool_str(function, "arguments", f"{at}.function.arguments")
                except _BadTool as e:
                    raise _BadTool(f"{e} (the API streams the arguments as JSON text, in fragments)") from None
            elif function is not None:
                raise _BadTool(f"{at}.function is {_json_type(function)}, not an object")
            chunks.append(
                ToolCallChunk(
                    index=self._tool_index(index, bool(id_)),
                    id=id_,
                    name=name,
                    arguments=arguments or "",
                )
            )
        return chunks

    def feed(self, chunk: bytes, out: list) -> None:
        limit = self.lines.max_line_bytes

        def on_line(line: bytes, n: int) -> None:
            if not line:
                self._dispatch(n, out)
                return
            if line[0:1] == b":":
                return
            i = line.find(b":")
            if i >= 0:
                name, value = line[:i], line[i + 1 :]
                if value.startswith(b" "):
                    value = value[1:]
            else:
                name, value = line, b""
            if name == b"data":
                if self.has_data:
                    self.data += b"\n"
                if len(self.data) + len(value) > limit:
                    raise line_too_long(limit)
                self.data += value
                self.has_data = True

        self.lines.feed(chunk, on_line)

    def finish(self, out: list) -> None:
        rest = self.lines.take_rest()
        if rest:
            self.feed(rest, out)
            self.feed(b"\n", out)
        self._dispatch(self.lines.lines_seen, out)

    def _dispatch(self, line: int, out: list) -> None:
        if not self.has_data:
            return
        self.has_data = False
        payload = bytes(self.data)
        self.data = bytearray()
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            raise invalid_utf8(line) from None
        text = text.strip()
        if text == "[DONE]":
            if not self.finished:
                self.finished = True
                out.append(Done(None))
            return
        try:
            obj = _parse_object(text)
            choices_v = obj.get("choices", [])
            if not isinstance(choices_v, list):
                raise _Bad(f"invalid type: {_type_name(choices_v)}, expected a sequence for `choices`")
            choices = []
            for c in choices_v:
                if not isinstance(c, dict):
                    raise _Bad(f"invalid type: {_type_name(c)}, expected a map for a choice")
                delta = _opt_obj(c, "delta")
                content = _opt_str(delta, "content") if delta is not None else None
                thought = None
                if delta is not None:
                    # reasoning_content (llama.cpp, vLLM, DeepSeek) or reasoning (the newer
                    # name); a server sending both sends one text twice
                    rc = _opt_str(delta, "reasoning_content")
                    r = _opt_str(delta, "reasoning")
                    thought = rc if rc else r
                tool_calls = delta.get("tool_calls") if delta is not None else None
                choices.append(
                    (content, thought, _opt_str(c, "text"), _opt_str(c, "finish_reason"), tool_calls)
                )
            usage = _opt_obj(obj, "usage")
            completion_details = _opt_obj(usage, "completion_tokens_details") if usage is not None else None
            prompt_details = _opt_obj(usage, "prompt_tokens_details") if usage is not None else None
            usage_v = (
                (
                    _opt_u64(usage, "prompt_tokens"),
                    _opt_u64(usage, "completion_tokens"),
                    _opt_u64(completion_details, "reasoning_tokens") if completion_details is not None else None,
                    _opt_u64(prompt_details, "cached_tokens") if prompt_details is not None else None,
                )
                if usage is not None
                else None
            )
            timings = _opt_obj(obj, "timings")
            timings_v = (
                (
                    _opt_u64(timings, "prompt_n"),
                    _opt_f64(timings, "prompt_ms"),
                    _opt_u64(timings, "predicted_n"),
                    _opt_f64(timings, "predicted_ms"),
                    _opt_u64(timings, "cache_n"),
                    _opt_f64(timings, "predicted_per_second"),
                )
                if timings is not None
                else None
            )
        except _Bad as e:
            raise malformed_json(line, str(e)) from None
        err = obj.get("error")
        if err is not None:
            msg = err.get("message") if isinstance(err, dict) else None
            out.append(ServerError(msg if isinstance(msg, str) else _compact(err)))
            return
        finish_reason = None
        for content, thought, text_field, reason, tool_calls in choices:
            if thought:
                out.append(Reasoning(thought))
            piece = content if content is not None else text_field
            if piece is not None:
                out.append(Text(piece))
            try:
                out.extend(self._tool_call_chunks(tool_calls))
            except _BadTool as e:
                raise malformed_tool_call(line, str(e)) from None
            if reason is not None:
                finish_reason = reason
        stats = ServerStats()
        has_stats = False
        if usage_v is not None:
            (stats.prompt_tokens, stats.output_tokens, stats.reasoning_tokens,
             stats.cached_prompt_tokens) = usage_v
            has_stats = True
        if timings_v is not None:
            prompt_n, prompt_ms, predicted_n, predicted_ms, cache_n, per_second = timings_v
            # usage counts every prompt token; llama.cpp's prompt_n only those evaluated
            # (not served from its cache, cache_n): usage wins where both are present, and
            # prompt_n + cache_n is the prompt's length where it is not, as in core.
            if stats.output_tokens is None:
                stats.output_tokens = predicted_n
            if stats.prompt_tokens is None and prompt_n is not None:
                stats.prompt_tokens = prompt_n + (cache_n or 0)
            if stats.cached_prompt_tokens is None:
                stats.cached_prompt_tokens = cache_n
            stats.eval_ms = predicted_ms
            stats.prompt_eval_ms = prompt_ms
            stats.reported_decode_tok_s = per_second
            has_stats = True
        if finish_reason is not None:
            stats.done_reason = finish_reason
            has_stats = True
        if has_stats:
            out.append(Stats(stats))
        if finish_reason is not None and not self.finished:
            self.finished = True
            out.append(Done(finish_reason))


# --- API kinds ----------------------------------------------------------------------------

API_PATHS = {
    "ollama": "/api/chat",
    "ollama-generate": "/api/generate",
    "openai-chat": "/v1/chat/completions",
    "openai-completions": "/v1/completions",
}

# The Rust Debug names, used in error messages so both sides say the same thing.
API_DEBUG = {
    "ollama": "Ollama",
    "ollama-generate": "OllamaGenerate",
    "openai-chat": "OpenaiChat",
    "openai-completions": "OpenaiCompletions",
}


def is_ollama(api: str) -> bool:
    return api in ("ollama", "ollama-generate")


def decoder_for(api: str, max_line_bytes: int):
    return OllamaDecoder(max_line_bytes) if is_ollama(api) else SseDecoder(max_line_bytes)
