"""One streaming call over httpx, timed with time.perf_counter_ns (core::call).

Timestamps: t_send just before the request is handed to httpx (after the request object is
built, as in Rust), a chunk's arrival the instant ``aiter_raw()`` hands it over, before it
is decoded; t_first/t_last at chunks that carried generated output (non-empty text or a
tool call), t_done at body end.
First-byte, idle and total timeouts are enforced here with the event loop's timer: an
``asyncio.timeout`` around ``client.send``, and for the body one ``asyncio.timeout`` per call
driven by one lazily re-armed timer (``_ReadDeadline``); the connect timeout belongs to httpx.
"""

from __future__ import annotations

import asyncio
import json
import math
from dataclasses import dataclass
from time import perf_counter_ns
from typing import Optional

import httpx

from .codecs import (
    API_DEBUG,
    CodecError,
    Done,
    Reasoning,
    ServerError,
    ServerStats,
    Stats,
    Text,
    ToolCallAssembly,
    ToolCallChunk,
    decoder_for,
    is_ollama,
)
from .connection import AgentClient, agent_client
from .live import Counter
from .metrics import percentiles

PREVIEW_CHARS = 160
ERROR_BODY_LIMIT = 64 * 1024
# Bounds of one call, as in core::call (see there for the reasons).
DEFAULT_RUNAWAY_FACTOR = 4.0
DEFAULT_MAX_RESPONSE_BYTES = 64 << 20
TOKEN_CAP_WITHOUT_NUM_PREDICT = 128 * 1024
KEPT_TEXT_BYTES = 256 * 1024
KEPT_OFFSETS = 16 * 1024
# A total timeout whose last chunk came within this (capped by idle) is "still arriving".
ARRIVING_WINDOW_NS = 1_000_000_000


def ms(ns: int) -> float:
    return max(ns, 0) / 1e6


@dataclass
class Settings:
    """CallSettings (timeouts in ns)."""

    first_byte_ns: int
    idle_ns: int
    total_ns: int
    max_line_bytes: int
    cold_load_threshold_ms: float
    runaway_factor: float = DEFAULT_RUNAWAY_FACTOR
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES

    def token_cap(self, num_predict: Optional[int]) -> int:
        """CallSettings::token_cap: the most text events a call may decode."""
        if num_predict is None:
            return TOKEN_CAP_WITHOUT_NUM_PREDICT
        cap = math.ceil(self.runaway_factor * num_predict)
        return max(int(min(cap, 2**64 - 1)), 1)

    @staticmethod
    def from_json(s: dict) -> "Settings":
        t = s["timeouts"]
        return Settings(
            first_byte_ns=int(t["first_byte_ms"] * 1e6),
            idle_ns=int(t["idle_ms"] * 1e6),
            total_ns=int(t["total_ms"] * 1e6),
            max_line_bytes=int(s["max_line_bytes"]),
            cold_load_threshold_ms=float(s["cold_load_threshold_ms"]),
            runaway_factor=float(s["runaway_factor"]),
            max_response_bytes=int(s["max_response_bytes"]),
        )


@dataclass
class Target:
    agent_id: str
    call: str
    url: str
    model: str
    api: str
    body: bytes
    api_key: Optional[str] = None
    # The output tokens the request asks for; sets the runaway cap (Settings.token_cap).
    num_predict: Optional[int] = None
    # Incremented once per generated event (non-empty text, a tool call), for live progress read by another thread
    # (live.Counter; core's CallTarget::live_tokens). None: nothing.
    live_tokens: Optional[Counter] = None


class CallFailure(Exception):
    def __init__(self, kind: str, message: str, status: Optional[int], at_ns: int):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status
        self.at_ns = at_ns


class _Measuring:
    def __init__(self, t: Target, s: Settings):
        self.t = t
        self.cold_load_threshold_ms = s.cold_load_threshold_ms
        self.t_send = perf_counter_ns()
        self.send_offset_ms = 0.0
        self.t_first: Optional[int] = None
        self.t_first_answer: Optional[int] = None
        self.reasoning_events = 0
        self.t_last: Optional[int] = None
        self.offsets_ms: list = []
        self.text_parts: list = []
        self.text_bytes = 0
        self.text_truncated = False
        self.text_events = 0
        # of text_events, those carrying a tool call or a fragment of one
        self.tool_call_events = 0
        self.tool_calls = ToolCallAssembly()
        self.token_cap = s.token_cap(t.num_predict)
        self.runaway_factor = s.runaway_factor
        self.t_last_chunk: Optional[int] = None
        self.bytes = 0
        self.server: Optional[ServerStats] = None
        self.done = False
        self.live = t.live_tokens

    def error_json(self, f: CallFailure) -> dict:
        e = {
            "kind": f.kind,
            "message": f.message,
            "url": self.t.url,
            "model": self.t.model,
        }
        if f.status is not None:
            e["status"] = f.status
        e["bytes_received"] = self.bytes
        e["elapsed_ms"] = ms(f.at_ns - self.t_send)
        return e

    def generated(self, at: int) -> None:
        """A generated event of any kind (answer, reasoning, tool call) arrived at `at`: time it, count
        it, and fail the call once it is past the runaway cap (as core's Measuring::generated)."""
        if self.live is not None:
            self.live.n += 1
        if self.t_first is None:
            self.t_first = at
        self.t_last = at
        self.text_events += 1
        if self.text_events > self.token_cap:
            raise CallFailure("runaway_stream", self.runaway_tokens_message(), 200, at)
        self.offsets_ms.append(ms(at - self.t_send))

    def on_event(self, ev, at: int) -> None:
        if isinstance(ev, Text):
            if ev.text:
                self.generated(at)
                if self.t_first_answer is None:
                    self.t_first_answer = at
                self.keep_text(ev.text)
        elif isinstance(ev, Reasoning):
            # timed and capped like answer text (the server decodes it alike and counts it
            # against num_predict); its text is not kept
            if ev.text:
                self.generated(at)
                self.reasoning_events += 1
        elif isinstance(ev, ToolCallChunk):
            # what the model generated instead of (or after) text: timed and capped alike;
            # assembled for the agent's next call, not part of the answer text
            self.generated(at)
            self.tool_call_events += 1
            self.tool_calls.push(ev)
        elif isinstance(ev, Stats):
            if self.server is None:
                self.server = ev.stats
            else:
                self.server.merge(ev.stats)
        elif isinstance(ev, Done):
            self.done = True
            if ev.reason is not None and self.server is not None and self.server.done_reason is None:
                self.server.done_reason = ev.reason
        elif isinstance(ev, ServerError):
            raise CallFailure("server_error", f"server error in stream: {ev.message}", 200, at)

    def keep_text(self, s: str) -> None:
        """Keep up to KEPT_TEXT_BYTES of UTF-8 text, cut at a character boundary."""
        if self.text_truncated:
            return
        b = s.encode("utf-8")
        room = KEPT_TEXT_BYTES - self.text_bytes
        if len(b) <= room:
            self.text_parts.append(s)
            self.text_bytes += len(b)
            return
        cut = b[:room].decode("utf-8", errors="ignore")
        self.text_parts.append(cut)
        self.text_bytes += len(cut.encode("utf-8"))
        self.text_truncated = True

    def runaway_tokens_message(self) -> str:
        n = self.t.num_predict
        if n is not None:
            asked = f"runaway_factor {_rust_float(self.runaway_factor)} x num_predict {n}"
        else:
            asked = "the cap for a call without num_predict"
        return (
            f"runaway stream: more than {self.token_cap} text events ({asked}) and no end in sight; "
            "the server generates past what was asked (set num_predict, or raise runaway_factor "
            "if this server splits tokens into several events)"
        )

    def finish(self, t_done: int, error: Optional[dict]) -> tuple:
        ttft_ms = ms(self.t_first - self.t_send) if self.t_first is not None else None
        decode_ms = (
            ms(self.t_last - self.t_first)
            if self.t_first is not None and self.t_last is not None
            else None
        )
        text_events = self.text_events
        if self.server is not None and self.server.output_tokens is not None:
            output_tokens = {"value": self.server.output_tokens, "basis": "measured"}
        elif text_events > 0:
            output_tokens = {"value": text_events, "basis": "estimated"}
        else:
            output_tokens = None
        client_decode_tok_s = tpot_ms = None
        if output_tokens is not None and decode_ms is not None and output_tokens["value"] > 1 and decode_ms > 0.0:
            per = decode_ms / float(output_tokens["value"] - 1)
            client_decode_tok_s, tpot_ms = 1e3 / per, per
        reasoning_tokens, answer_tokens = reasoning_split(
            self.server, output_tokens, text_events, self.reasoning_events
        )
        gaps = [b - a for a, b in zip(self.offsets_ms, self.offsets_ms[1:])]
        cold_load = (
            self.server is not None
            and self.server.load_ms is not None
            and self.server.load_ms > self.cold_load_threshold_ms
        )
        text = "".join(self.text_parts)
        record = {
            "agent_id": self.t.agent_id,
            "call": self.t.call,
            "url": self.t.url,
            "model": self.t.model,
            "send_offset_ms": self.send_offset_ms,
            "ttft_ms": ttft_ms,
            "e2e_ms": ms(t_done - self.t_send),
            "decode_ms": decode_ms,
            "output_tokens": output_tokens,
            "text_events": text_events,
            "bytes_received": self.bytes,
            "text_offsets_ms": self.offsets_ms[:KEPT_OFFSETS],
            "client_decode_tok_s": client_decode_tok_s,
            "tpot_ms": tpot_ms,
            "gap_ms": percentiles(gaps),
            "server": self.server.to_json() if self.server is not None else None,
            "server_decode_tok_s": self.server.decode_tok_s() if self.server is not None else None,
            "cold_load": cold_load,
            "output_preview": text[:PREVIEW_CHARS],
            "error": error,
            "ttft_answer_ms": ms(self.t_first_answer - self.t_send) if self.t_first_answer is not None else None,
            "reasoning_events": self.reasoning_events,
            "reasoning_tokens": reasoning_tokens,
            "answer_tokens": answer_tokens,
            "output_truncated": self.text_truncated,
            "tool_calls": len(self.tool_calls),
            "tool_call_events": self.tool_call_events,
        }
        return record, text, self.tool_calls.into_calls()


def reasoning_split(server: Optional[ServerStats], output: Optional[dict], text_events: int, reasoning_events: int) -> tuple:
    """(reasoning_tokens, answer_tokens) of a call, as core's call::reasoning_split: server
    counts where the server gives them, else the events counted."""
    if server is not None and server.reasoning_tokens is not None:
        reasoning = {"value": server.reasoning_tokens, "basis": "measured"}
    elif reasoning_events > 0:
        reasoning = {"value": reasoning_events, "basis": "estimated"}
    else:
        reasoning = None
    if reasoning is None:
        answer = output
    elif output is not None and output["basis"] == "measured" and reasoning["basis"] == "measured":
        answer = {"value": max(output["value"] - reasoning["value"], 0), "basis": "measured"}
    else:
        answer = {"value": text_events - reasoning_events, "basis": "estimated"}
    return reasoning, answer


# httpx raises RemoteProtocolError both for a peer that closed early and for bytes h11
# cannot parse; these are httpcore's words for the first (the rest are framing).
_PEER_CLOSED = ("peer closed connection", "server disconnected")


def _rust_float(f: float) -> str:
    """A float as Rust's Display writes it (4.0 -> "4", 2.5 -> "2.5")."""
    return str(int(f)) if f.is_integer() and abs(f) < 1e16 else repr(f)


def _unasked_encoding(enc: Optional[str]) -> Optional[str]:
    """A content-encoding other than identity: the body is not the bytes the codec reads."""
    if enc is None:
        return None
    enc = enc.strip()
    return enc if enc and enc.lower() != "identity" else None


def _http_error_kind(e: BaseException, during_body: bool) -> str:
    if isinstance(e, httpx.ConnectTimeout):
        return "connect_timeout"
    if isinstance(e, httpx.ConnectError):
        return "connect"
    if isinstance(e, (httpx.InvalidURL, httpx.UnsupportedProtocol)):
        return "invalid_url"
    if isinstance(e, httpx.RemoteProtocolError) and not str(e).lower().startswith(_PEER_CLOSED):
        return "framing"
    return "body" if during_body else "request"


def _reason(e: BaseException) -> str:
    """The error's text, with the OS error under it (httpx's ReadError for a reset says nothing)."""
    text = str(e)
    seen, x = set(), e
    while x is not None and id(x) not in seen:
        seen.add(id(x))
        if isinstance(x, OSError) and x is not e:
            detail = f"{type(x).__name__}: {x}"
            if str(x) not in text:
                text = f"{text}: {detail}" if text else detail
            break
        x = x.__cause__ or x.__context__
    return text or type(e).__name__


def _http_error_message(e: BaseException, url: str, during_body: bool) -> str:
    kind = _http_error_kind(e, during_body)
    reason = _reason(e)
    if kind == "connect":
        return f"cannot connect to {url}: {reason}"
    if kind == "connect_timeout":
        return f"connect to {url} timed out"
    if kind == "invalid_url":
        return f"invalid url {url}: {reason}"
    if kind == "framing":
        if "receive buffer too long" in reason.lower():
            where = "a chunk line" if during_body else "the response head"
            reason = f"{where} is larger than httpcore accepts (100 KiB): {reason}"
        return f"the response's HTTP framing is invalid: {reason}"
    if kind == "body":
        return f"reading the body failed: {reason}"
    return f"request failed: {reason}"


def _error_body_message(body: bytes) -> str:
    try:
        v = json.loads(body)
    except Exception:
        v = None
    if isinstance(v, dict) and "error" in v:
        e = v["error"]
        if isinstance(e, str):
            return e
        if isinstance(e, dict) and isinstance(e.get("message"), str):
            return e["message"]
    return body[:300].decode("utf-8", errors="replace").strip()


def _content_type_fits(api: str, ct: Optional[str]) -> bool:
    if ct is None:
        return True
    ct = ct.lower()
    return "json" in ct if is_ollama(api) else "event-stream" in ct


async def _next_chunk(it, remaining_ns: int):
    """The next raw chunk, or raise TimeoutError when ``remaining_ns`` passes first."""
    async with asyncio.timeout(max(remaining_ns, 0) / 1e9):
        return await it.__anext__()


class _ReadDeadline:
    """The first-byte, idle and total timeouts of the body reads on one loop timer per call.

    Same deadlines as one ``asyncio.timeout`` per read (each read's own: the first-byte
    deadline until a byte came, then the read's start + idle, capped by the total deadline),
    but a read only stores its deadline: arming and cancelling a timer for every chunk cost
    about 9 us per chunk, a third of the client's CPU at one token per HTTP chunk (py-spy;
    docs/backends.md, "Python backends"). The timer, when it fires, re-arms itself at the
    current read's deadline if that has moved on, else expires ``scope`` (the call's
    ``asyncio.timeout``), which cancels the task and raises TimeoutError at its exit, as
    before; ``expired`` then says which timeout it was."""

    __slots__ = ("loop", "scope", "deadline_ns", "kind", "what", "handle", "armed_ns", "expired")

    def __init__(self, scope) -> None:
        self.loop = asyncio.get_running_loop()
        self.scope = scope
        self.deadline_ns = 0
        self.kind = self.what = ""
        self.handle = None
        self.armed_ns = 0
        self.expired: Optional[tuple] = None

    def set(self, deadline_ns: int, kind: str, what: str) -> None:
        """The read about to start must end by ``deadline_ns`` (perf_counter_ns clock)."""
        self.deadline_ns, self.kind, self.what = deadline_ns, kind, what
        # A later deadline is picked up when the armed timer fires; only an earlier one (or
        # none armed) needs the timer moved now.
        if self.handle is None or deadline_ns < self.armed_ns:
            self._arm()

    def _arm(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
        self.armed_ns = self.deadline_ns
        self.handle = self.loop.call_later(max(self.deadline_ns - perf_counter_ns(), 0) / 1e9, self._fire)

    def _fire(self) -> None:
        self.handle = None
        if perf_counter_ns() < self.deadline_ns:
            self._arm()
        else:
            self.expired = (self.kind, self.what)
            self.scope.reschedule(self.loop.time())

    def cancel(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None


async def execute_call(client, target: Target, settings: Settings, phase_start: int) -> tuple:
    """Run one streaming call on ``client`` (an agent's ``AgentClient``, or a bare httpx client
    taken as a keep-alive one) and measure it; returns (CallRecord dict, the answer text, the
    tool calls the model made: ``[{"id","name","arguments"}]`` in the order it made them)."""
    client = agent_client(client)
    opened, reconnects = client.counts()
    record, text, tool_calls = await _execute_call(client, target, settings, phase_start)
    after = client.counts()
    record["connections_opened"] = after[0] - opened
    record["reconnects"] = after[1] - reconnects
    return record, text, tool_calls


async def _execute_call(client: AgentClient, target: Target, settings: Settings, phase_start: int) -> tuple:
    m = _Measuring(target, settings)
    # Connection reuse is the client's (its policy): `Connection: close` under fresh.
    headers = {
        "content-type": "application/json",
        "accept-encoding": "identity",
    }
    if target.api_key:
        headers["authorization"] = f"Bearer {target.api_key}"
    error = None
    try:
        req = client.build_request("POST", target.url, content=target.body, headers=headers)
    except Exception as e:  # an unusable URL fails before anything is sent
        m.t_send = perf_counter_ns()
        m.send_offset_ms = ms(m.t_send - phase_start)
        error = m.error_json(CallFailure("invalid_url", f"invalid url {target.url}: {e}", None, m.t_send))
        return m.finish(perf_counter_ns(), error)
    t_send = perf_counter_ns()
    m.t_send = t_send
    m.send_offset_ms = ms(t_send - phase_start)
    try:
        await _stream_call(client, req, target.api, settings, m)
    except CallFailure as f:
        error = m.error_json(f)
    t_done = perf_counter_ns()
    return m.finish(t_done, error)


async def _stream_call(client: AgentClient, req: httpx.Request, api: str, s: Settings, m: _Measuring) -> None:
    t_send = m.t_send
    total_deadline = t_send + s.total_ns
    first_byte_deadline = t_send + min(s.first_byte_ns, s.total_ns)

    resp = None
    try:
        try:
            async with asyncio.timeout(max(first_byte_deadline - perf_counter_ns(), 0) / 1e9):
                resp = await client.send(req)
        except TimeoutError:
            kind = "total_timeout" if s.total_ns <= s.first_byte_ns else "first_byte_timeout"
            limit_ms = min(s.first_byte_ns, s.total_ns) // 1_000_000
            raise CallFailure(kind, f"no response within {limit_ms} ms (first-byte timeout)", None, perf_counter_ns())
        except httpx.HTTPError as e:
            raise CallFailure(_http_error_kind(e, False), _http_error_message(e, req.url.__str__(), False), None, perf_counter_ns())

        it = resp.aiter_raw()
        if resp.status_code != 200:
            body = bytearray()
            while len(body) < ERROR_BODY_LIMIT:
                try:
                    body += await _next_chunk(it, s.idle_ns)
                except (StopAsyncIteration, TimeoutError, httpx.HTTPError):
                    break
            m.bytes = len(body)
            raise CallFailure(
                "http_status",
                f"HTTP {resp.status_code}: {_error_body_message(bytes(body))}",
                resp.status_code,
                perf_counter_ns(),
            )
        ct = resp.headers.get("content-type")
        if not _content_type_fits(api, ct):
            raise CallFailure(
                "wrong_content_type",
                f"unexpected content type {json.dumps(ct or '')} for the {API_DEBUG[api]} API (is this the right endpoint?)",
                200,
                perf_counter_ns(),
            )
        enc = _unasked_encoding(resp.headers.get("content-encoding"))
        if enc is not None:
            raise CallFailure(
                "wrong_content_type",
                f"the response body is encoded with content-encoding {json.dumps(enc)}, which the request "
                "did not accept (it asks for identity); turn compression off on the server or "
                "the proxy in front of it",
                200,
                perf_counter_ns(),
            )

        decoder = decoder_for(api, s.max_line_bytes)
        events: list = []
        watch = None
        try:
            async with asyncio.timeout(None) as scope:
                watch = _ReadDeadline(scope)
                while True:
                    now = perf_counter_ns()
                    if m.bytes == 0:
                        deadline, kind, what = first_byte_deadline, "first_byte_timeout", "first byte"
                    else:
                        deadline, kind, what = now + s.idle_ns, "idle_timeout", "idle"
                    if total_deadline <= deadline:
                        deadline, kind, what = total_deadline, "total_timeout", "total"
                    watch.set(deadline, kind, what)
                    try:
                        chunk = await it.__anext__()
                    except StopAsyncIteration:
                        break
                    except httpx.HTTPError as e:
                        kind = _http_error_kind(e, True)
                        if kind == "body" and not m.done:
                            # As in Rust: a body that breaks off (a reset, EOF inside a chunked
                            # body) before the final line is the server closing early.
                            raise CallFailure(
                                "closed_before_done",
                                "the connection closed before the server said the generation was done "
                                f"({_reason(e)})",
                                200,
                                perf_counter_ns(),
                            )
                        raise CallFailure(kind, _http_error_message(e, str(req.url), True), 200, perf_counter_ns())
                    at = perf_counter_ns()
                    if watch.expired is not None:
                        # The timer fired while this chunk was on its way (the scope's cancel
                        # lands an iteration later): a timeout, as a per-read timeout made it.
                        raise TimeoutError
                    m.bytes += len(chunk)
                    m.t_last_chunk = at
                    if m.bytes > s.max_response_bytes:
                        raise CallFailure(
                            "runaway_stream",
                            f"runaway stream: the response passed max_response_bytes ({s.max_response_bytes} bytes) "
                            "and no end in sight; the server sends far more than was asked (raise "
                            "max_response_bytes if this reply is real)",
                            200,
                            at,
                        )
                    try:
                        decoder.feed(chunk, events)
                    except CodecError as e:
                        raise CallFailure(e.kind, e.message, 200, at)
                    for ev in events:
                        m.on_event(ev, at)
                    events.clear()
        except TimeoutError:
            if watch is None or watch.expired is None:
                raise  # not one of our deadlines: a bug, not a stalled stream
            kind, what = watch.expired
            at = perf_counter_ns()
            last = m.t_last_chunk
            if kind == "total_timeout" and last is not None and at - last < min(s.idle_ns, ARRIVING_WINDOW_NS):
                raise CallFailure(
                    kind,
                    f"the total time of {s.total_ns // 1_000_000} ms ran out while tokens were still arriving "
                    f"(the last chunk came {ms(at - last):.0f} ms before; raise total_ms or lower num_predict)",
                    200,
                    at,
                )
            raise CallFailure(kind, f"stream stalled: {what} timeout", 200, at)
        finally:
            if watch is not None:
                watch.cancel()
        at = perf_counter_ns()
        try:
            decoder.finish(events)
        except CodecError as e:
            raise CallFailure(e.kind, e.message, 200, at)
        for ev in events:
            m.on_event(ev, at)
        if not m.done:
            raise CallFailure(
                "closed_before_done",
                "the connection closed before the server said the generation was done",
                200,
                at,
            )
    finally:
        if resp is not None:
            try:
                await resp.aclose()
            except Exception:
                pass
