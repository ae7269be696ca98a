"""The sans-IO codecs, on the same streams as the Rust codec tests, split everywhere."""

import pytest

from chimeraforge_py.codecs import (
    CodecError,
    Done,
    OllamaDecoder,
    Reasoning,
    ServerError,
    ServerStats,
    SseDecoder,
    Stats,
    Text,
)

OLLAMA = (
    '{"model":"gemma3","created_at":"t","message":{"role":"assistant","content":"Hé"},"done":false}\n'
    '{"model":"gemma3","created_at":"t","message":{"role":"assistant","content":"llo 日本"},"done":false}\n'
    '{"model":"gemma3","created_at":"t","message":{"role":"assistant","content":" —"},"done":false}\r\n'
    '{"model":"gemma3","created_at":"t","message":{"role":"assistant","content":""},"done":true,'
    '"done_reason":"length","total_duration":2500000000,"load_duration":1000000,'
    '"prompt_eval_count":26,"prompt_eval_duration":130000000,"eval_count":3,"eval_duration":30000000}\n'
).encode()

OLLAMA_EXPECTED = [
    Text("Hé"),
    Text("llo 日本"),
    Text(" —"),
    Stats(ServerStats(output_tokens=3, prompt_tokens=26, eval_ms=30.0, prompt_eval_ms=130.0,
                      load_ms=1.0, total_ms=2500.0, done_reason="length")),
    Done("length"),
]

SSE = (
    ": keep-alive comment\r\n\r\n"
    'data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":"Hé"},"finish_reason":null}]}\r\n\r\n'
    "event: message\n"
    'data: {"id":"c1","choices":[{"index":0,\n'
    'data: "delta":{"content":"llo 日本"},"finish_reason":null}]}\n\n'
    'data:{"id":"c1","choices":[{"index":0,"delta":{},"finish_reason":"length"}]}\n\n'
    'data: {"id":"c1","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":2,"total_tokens":14},'
    '"timings":{"prompt_n":12,"prompt_ms":30.5,"predicted_n":2,"predicted_ms":20.0,"predicted_per_second":100.0}}\n\n'
    "data: [DONE]\n\n"
).encode()

SSE_EXPECTED = [
    Text("Hé"),
    Text("llo 日本"),
    Stats(ServerStats(done_reason="length")),
    Done("length"),
    Stats(ServerStats(output_tokens=2, prompt_tokens=12, eval_ms=20.0, prompt_eval_ms=30.5,
                      reported_decode_tok_s=100.0)),
]


def decode(cls, chunks):
    d = cls(1 << 20)
    out = []
    for c in chunks:
        d.feed(c, out)
    d.finish(out)
    return out


# Reasoning models, as in the Rust codec tests: Ollama /api/chat `message.thinking`,
# /api/generate `thinking`, OpenAI-compatible `delta.reasoning_content` / `delta.reasoning`.
OLLAMA_CHAT_THINKING = (
    '{"model":"qwen3","created_at":"t","message":{"role":"assistant","content":"","thinking":"Ok"},"done":false}\n'
    '{"model":"qwen3","created_at":"t","message":{"role":"assistant","content":"","thinking":"ay, 日本"},"done":false}\n'
    '{"model":"qwen3","created_at":"t","message":{"role":"assistant","content":"Hé"},"done":false}\n'
    '{"model":"qwen3","created_at":"t","message":{"role":"assistant","content":""},"done":true,'
    '"done_reason":"stop","eval_count":3,"eval_duration":30000000}\n'
).encode()

OLLAMA_GENERATE_THINKING = (
    '{"model":"qwen3","created_at":"t","response":"","thinking":"Ok","done":false}\n'
    '{"model":"qwen3","created_at":"t","response":"","thinking":"ay, 日本","done":false}\n'
    '{"model":"qwen3","created_at":"t","response":"Hé","done":false}\n'
    '{"model":"qwen3","created_at":"t","response":"","done":true,'
    '"done_reason":"stop","eval_count":3,"eval_duration":30000000}\n'
).encode()

OLLAMA_THINKING_EXPECTED = [
    Reasoning("Ok"),
    Reasoning("ay, 日本"),
    Text("Hé"),
    Stats(ServerStats(output_tokens=3, eval_ms=30.0, done_reason="stop")),
    Done("stop"),
]

SSE_REASONING = (
    'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":null,"FIELD":"Ok"},"finish_reason":null}]}\n\n'
    'data: {"choices":[{"index":0,"delta":{"FIELD":"ay, 日本"},"finish_reason":null}]}\r\n\r\n'
    'data: {"choices":[{"index":0,"delta":{"content":"Hé"},"finish_reason":"stop"}]}\n\n'
    'data: {"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8,'
    '"completion_tokens_details":{"reasoning_tokens":2}}}\n\n'
    "data: [DONE]\n\n"
)

SSE_REASONING_EXPECTED = [
    Reasoning("Ok"),
    Reasoning("ay, 日本"),
    Text("Hé"),
    Stats(ServerStats(done_reason="stop")),
    Done("stop"),
    Stats(ServerStats(output_tokens=3, prompt_tokens=5, reasoning_tokens=2)),
]

CASES = [
    (OllamaDecoder, OLLAMA, OLLAMA_EXPECTED),
    (SseDecoder, SSE, SSE_EXPECTED),
    (OllamaDecoder, OLLAMA_CHAT_THINKING, OLLAMA_THINKING_EXPECTED),
    (OllamaDecoder, OLLAMA_GENERATE_THINKING, OLLAMA_THINKING_EXPECTED),
    (SseDecoder, SSE_REASONING.replace("FIELD", "reasoning_content").encode(), SSE_REASONING_EXPECTED),
    (SseDecoder, SSE_REASONING.replace("FIELD", "reasoning").encode(), SSE_REASONING_EXPECTED),
]
IDS = [
    "ollama-ndjson",
    "openai-sse",
    "ollama-chat-thinking",
    "ollama-generate-thinking",
    "openai-reasoning-content",
    "openai-reasoning",
]


@pytest.mark.parametrize("cls,stream,expected", CASES, ids=IDS)
def test_whole_stream(cls, stream, expected):
    assert decode(cls, [stream]) == expected


@pytest.mark.parametrize("cls,stream,expected", CASES, ids=IDS)
def test_every_two_way_split(cls, stream, expected):
    # includes every split inside a multi-byte UTF-8 character (é, 日, 本, —)
    multibyte_splits = 0
    for i in range(len(stream) + 1):
        a, b = stream[:i], stream[i:]
        if b and 0x80 <= b[0] < 0xC0:
            multibyte_splits += 1
        assert decode(cls, [a, b]) == expected, f"split at {i}"
    assert multibyte_splits >= 5  # é, 日, 本 (and — in the NDJSON stream)


@pytest.mark.parametrize("cls,stream,expected", CASES, ids=IDS)
def test_one_byte_at_a_time(cls, stream, expected):
    assert decode(cls, [stream[i : i + 1] for i in range(len(stream))]) == expected


def test_ollama_final_line_without_newline_is_a_line():
    assert decode(OllamaDecoder, [OLLAMA.rstrip(b"\n")]) == OLLAMA_EXPECTED


def test_ollama_truncated_line_is_an_error():
    with pytest.raises(CodecError) as e:
        decode(OllamaDecoder, [OLLAMA[:-20]])
    assert e.value.kind == "malformed_stream"
    assert "middle of a line" in e.value.message


def test_ollama_generate_response_field_and_error_line():
    out = decode(OllamaDecoder, [b'{"response":"ab","done":false}\n{"error":"model not found"}\n'])
    assert out == [Text("ab"), ServerError("model not found")]


def test_invalid_utf8_is_reported():
    with pytest.raises(CodecError) as e:
        decode(OllamaDecoder, [b'{"response":"\xff","done":false}\n'])
    assert e.value.kind == "invalid_utf8"
    with pytest.raises(CodecError) as e:
        decode(SseDecoder, [b'data: {"choices":[{"text":"\xc3"}]}\n\n'])
    assert e.value.kind == "invalid_utf8"


def test_malformed_and_mistyped_json_are_reported():
    for cls, body in [
        (OllamaDecoder, b"{nope\n"),
        (OllamaDecoder, b'{"response":5}\n'),
        (OllamaDecoder, b"[1,2]\n"),
        (SseDecoder, b"data: {nope\n\n"),
        (SseDecoder, b'data: {"choices":[{"delta":{"content":3}}]}\n\n'),
    ]:
        with pytest.raises(CodecError) as e:
            decode(cls, [body])
        assert e.value.kind == "malformed_stream", body


def test_line_too_long():
    for cls in (OllamaDecoder, SseDecoder):
        d = cls(16)
        with pytest.raises(CodecError) as e:
            d.feed(b"x" * 17, [])
        assert e.value.kind == "line_too_long"
    d = SseDecoder(16)
    with pytest.raises(CodecError):
        d.feed(b"data: 0123456789\ndata: 0123456789\n", [])


def test_sse_completions_text_error_and_trailing_event():
    assert decode(SseDecoder, [b'data: {"choices":[{"text":"abc","finish_reason":null}]}\n\ndata: [DONE]\n\n']) == [
        Text("abc"),
        Done(None),
    ]
    assert decode(SseDecoder, [b'data: {"error":{"message":"boom","type":"server_error"}}\n\n']) == [
        ServerError("boom")
    ]
    assert decode(SseDecoder, [b'data: {"choices":[{"text":"a"}]}']) == [Text("a")]


def test_done_is_reported_once():
    out = decode(SseDecoder, [b'data: {"choices":[{"text":"a","finish_reason":"stop"}]}\n\ndata: [DONE]\n\n'])
    assert out == [Text("a"), Stats(ServerStats(done_reason="stop")), Done("stop")]


def test_both_reasoning_names_in_one_delta_are_one_thought():
    out = decode(SseDecoder, [b'data: {"choices":[{"delta":{"reasoning_content":"x","reasoning":"x"}}]}\n\n'])
    assert out == [Reasoning("x")]
    # an empty reasoning_content beside a full reasoning is no reason to drop the thought
    out = decode(SseDecoder, [b'data: {"choices":[{"delta":{"reasoning_content":"","reasoning":"y"}}]}\n\n'])
    assert out == [Reasoning("y")]


def test_empty_thinking_is_no_reasoning():
    out = decode(OllamaDecoder, [b'{"response":"a","thinking":"","done":false}\n'])
    assert out == [Text("a")]


# --- prompt-cache figures and server rates (core's api::openai / api::ollama tests) ---------

SSE_CACHED = (
    'data: {"choices":[{"index":0,"delta":{"content":"a"}}]}\n\n'
    'data: {"choices":[],"usage":{"completion_tokens":32,"prompt_tokens":133,"total_tokens":165,'
    '"prompt_tokens_details":{"cached_tokens":128}},"timings":{"cache_n":128,"prompt_n":5,'
    '"prompt_ms":20.1,"predicted_n":32,"predicted_ms":1240.0,"predicted_per_second":25.0}}\n\n'
    "data: [DONE]\n\n"
).encode()

OLLAMA_CACHED = (
    '{"model":"gemma3","message":{"role":"assistant","content":"x"},"done":false}\n'
    '{"model":"gemma3","message":{"role":"assistant","content":""},"done":true,'
    '"done_reason":"stop","prompt_eval_count":133,"prompt_eval_cached_count":128,'
    '"prompt_eval_duration":9000000,"eval_count":40,"eval_duration":1600000000}\n'
).encode()

CACHED_STATS = ServerStats(output_tokens=32, prompt_tokens=133, eval_ms=1240.0, prompt_eval_ms=20.1,
                           cached_prompt_tokens=128, reported_decode_tok_s=25.0)
OLLAMA_CACHED_STATS = ServerStats(output_tokens=40, prompt_tokens=133, eval_ms=1600.0, prompt_eval_ms=9.0,
                                  done_reason="stop", cached_prompt_tokens=128)


def _every_split(cls, stream, expected):
    for i in range(len(stream) + 1):
        assert decode(cls, [stream[:i], stream[i:]]) == expected, f"split at {i}"


def test_cached_prompt_tokens_and_server_rates_at_every_split():
    _every_split(SseDecoder, SSE_CACHED, [Text("a"), Stats(CACHED_STATS), Done(None)])
    _every_split(OllamaDecoder, OLLAMA_CACHED, [Text("x"), Stats(OLLAMA_CACHED_STATS), Done("stop")])
    # llama.cpp's own rate field, not 32 / 1.24 s; Ollama's eval_count / eval_duration
    assert CACHED_STATS.decode_tok_s() == 25.0
    assert OLLAMA_CACHED_STATS.decode_tok_s() == 25.0


def test_timings_without_usage_count_the_whole_prompt():
    usage = ('"usage":{"completion_tokens":32,"prompt_tokens":133,"total_tokens":165,'
             '"prompt_tokens_details":{"cached_tokens":128}},').encode()
    assert usage in SSE_CACHED
    _every_split(SseDecoder, SSE_CACHED.replace(usage, b""), [Text("a"), Stats(CACHED_STATS), Done(None)])


@pytest.mark.parametrize("name,prompt,cached,rate", [
    ("llamacpp_chat_stream.txt", 31, 0, 9.985044979406648),
    ("llamacpp_completions_stream.txt", 6, 1, 9.829480705363535),
    ("llamacpp_chat_cached_stream.txt", 24, 19, 7.0032190448583584),
])
def test_captured_llamacpp_fixtures_give_llamacpps_own_rate(name, prompt, cached, rate):
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "crates/core/tests/fixtures" / name
    stream = path.read_bytes()
    stats = ServerStats()
    for e in decode(SseDecoder, [stream]):
        if isinstance(e, Stats):
            stats.merge(e.stats)
    assert (stats.prompt_tokens, stats.cached_prompt_tokens) == (prompt, cached)
    assert stats.decode_tok_s() == rate
    assert stats.output_tokens / (stats.eval_ms / 1e3) > rate * 1.02
    # and that field is (n - 1) / predicted_ms, the definition methodology.md states
    assert abs((stats.output_tokens - 1) / (stats.eval_ms / 1e3) - rate) <= rate * 1e-6


# Tool calls, as in the Rust codec tests: OpenAI `delta.tool_calls` fragments interleaved by
# index (vLLM's shape), text then a call (llama.cpp's), Ollama's whole calls.
from chimeraforge_py.codecs import ToolCallAssembly, ToolCallChunk  # noqa: E402

SSE_PARALLEL_TOOLS = (
    'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":null,"tool_calls":[{"id":"call_9f1","type":"function","index":0,"function":{"name":"web_search","arguments":""}}]},"logprobs":null,"finish_reason":null}]}\n\n'
    'data: {"id":"chatcmpl-1","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\\"query\\": \\"日"}}]},"finish_reason":null}]}\n\n'
    'data: {"id":"chatcmpl-1","choices":[{"index":0,"delta":{"tool_calls":[{"id":"call_a20","type":"function","index":1,"function":{"name":"fetch","arguments":""}}]},"finish_reason":null}]}\r\n\r\n'
    'data: {"id":"chatcmpl-1","choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"function":{"arguments":"{\\"url\\": 1}"}}]},"finish_reason":null}]}\n\n'
    'data: {"id":"chatcmpl-1","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"本\\"}"}}]},"finish_reason":null}]}\n\n'
    'data: {"id":"chatcmpl-1","choices":[{"index":0,"delta":{"content":""},"finish_reason":"tool_calls"}]}\n\n'
    'data: {"id":"chatcmpl-1","choices":[],"usage":{"prompt_tokens":40,"completion_tokens":9,"total_tokens":49}}\n\n'
    "data: [DONE]\n\n"
).encode()


def _tools_end(completion_tokens, prompt_tokens):
    return [
        Stats(ServerStats(done_reason="tool_calls")),
        Done("tool_calls"),
        Stats(ServerStats(output_tokens=completion_tokens, prompt_tokens=prompt_tokens)),
    ]


SSE_PARALLEL_TOOLS_EXPECTED = [
    ToolCallChunk(0, "call_9f1", "web_search", ""),
    ToolCallChunk(0, None, None, '{"query": "日'),
    ToolCallChunk(1, "call_a20", "fetch", ""),
    ToolCallChunk(1, None, None, '{"url": 1}'),
    ToolCallChunk(0, None, None, '本"}'),
    Text(""),
] + _tools_end(9, 40)

SSE_TEXT_THEN_TOOL = (
    'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":"Let me "},"finish_reason":null}]}\n\n'
    'data: {"choices":[{"index":0,"delta":{"content":"look."},"finish_reason":null}]}\n\n'
    'data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"abc","type":"function","function":{"name":"web_search","arguments":"{\\"query\\":"}}]},"finish_reason":null}]}\n\n'
    'data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\\"x\\"}"}}]},"finish_reason":null}]}\n\n'
    'data: {"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}\n\n'
    'data: {"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":4,"total_tokens":11}}\n\n'
    "data: [DONE]\n\n"
).encode()

SSE_TEXT_THEN_TOOL_EXPECTED = [
    Text("Let me "),
    Text("look."),
    ToolCallChunk(0, "abc", "web_search", '{"query":'),
    ToolCallChunk(0, None, None, '"x"}'),
] + _tools_end(4, 7)

OLLAMA_TEXT_THEN_TOOLS = (
    '{"model":"qwen3","created_at":"t","message":{"role":"assistant","content":"Let me "},"done":false}\n'
    '{"model":"qwen3","created_at":"t","message":{"role":"assistant","content":"look."},"done":false}\n'
    '{"model":"qwen3","created_at":"t","message":{"role":"assistant","content":"","tool_calls":['
    '{"function":{"name":"web_search","arguments":{"query":"日本","limit":3}}},'
    '{"id":"call_x1","function":{"index":1,"name":"fetch","arguments":{}}}]},"done":false}\r\n'
    '{"model":"qwen3","created_at":"t","message":{"role":"assistant","content":""},"done":true,'
    '"done_reason":"stop","prompt_eval_count":50,"eval_count":20,"eval_duration":200000000}\n'
).encode()

OLLAMA_TEXT_THEN_TOOLS_EXPECTED = [
    Text("Let me "),
    Text("look."),
    # keys sorted, compact: as serde_json writes the object
    ToolCallChunk(None, None, "web_search", '{"limit":3,"query":"日本"}'),
    ToolCallChunk(None, "call_x1", "fetch", "{}"),
    Stats(ServerStats(output_tokens=20, prompt_tokens=50, eval_ms=200.0, done_reason="stop")),
    Done("stop"),
]

TOOL_CASES = [
    (SseDecoder, SSE_PARALLEL_TOOLS, SSE_PARALLEL_TOOLS_EXPECTED),
    (SseDecoder, SSE_TEXT_THEN_TOOL, SSE_TEXT_THEN_TOOL_EXPECTED),
    (OllamaDecoder, OLLAMA_TEXT_THEN_TOOLS, OLLAMA_TEXT_THEN_TOOLS_EXPECTED),
]
TOOL_IDS = ["openai-parallel-tool-calls", "openai-text-then-tool-call", "ollama-text-then-tool-calls"]


@pytest.mark.parametrize("cls,stream,expected", TOOL_CASES, ids=TOOL_IDS)
def test_tool_calls_whole_every_two_way_split_and_byte_by_byte(cls, stream, expected):
    assert decode(cls, [stream]) == expected
    for i in range(len(stream) + 1):
        assert decode(cls, [stream[:i], stream[i:]]) == expected, f"split at {i}"
    assert decode(cls, [stream[i : i + 1] for i in range(len(stream))]) == expected


def test_parallel_tool_calls_assemble_by_index():
    calls = ToolCallAssembly()
    for ev in SSE_PARALLEL_TOOLS_EXPECTED:
        if isinstance(ev, ToolCallChunk):
            calls.push(ev)
    assert calls.into_calls() == [
        {"id": "call_9f1", "name": "web_search", "arguments": '{"query": "日本"}'},
        {"id": "call_a20", "name": "fetch", "arguments": '{"url": 1}'},
    ]
    whole = ToolCallAssembly()
    for ev in OLLAMA_TEXT_THEN_TOOLS_EXPECTED:
        if isinstance(ev, ToolCallChunk):
            whole.push(ev)
    assert [c["id"] for c in whole.into_calls()] == ["call_0", "call_x1"]


def test_fragments_without_an_index_start_a_call_with_an_id_and_continue_the_last_without():
    out = decode(SseDecoder, [
        b'data: {"choices":[{"delta":{"tool_calls":[{"id":"a","function":{"name":"f","arguments":"{"}}]}}]}\n\n'
        b'data: {"choices":[{"delta":{"tool_calls":[{"function":{"arguments":"}"}}]}}]}\n\n'
        b'data: {"choices":[{"delta":{"tool_calls":[{"id":"b","function":{"name":"g","arguments":"{}"}}]}}]}\n\n'
    ])
    assert out == [
        ToolCallChunk(0, "a", "f", "{"),
        ToolCallChunk(0, None, None, "}"),
        ToolCallChunk(1, "b", "g", "{}"),
    ]


def test_ollama_arguments_already_as_text_or_absent_are_accepted():
    out = decode(OllamaDecoder, [
        b'{"message":{"content":"","tool_calls":[{"function":{"name":"f","arguments":"{\\"a\\":1}"}},'
        b'{"function":{"name":"g"}}]},"done":false}\n'
    ])
    assert out == [ToolCallChunk(None, None, "f", '{"a":1}'), ToolCallChunk(None, None, "g", "{}")]


@pytest.mark.parametrize("delta,want", [
    ('{"tool_calls":{"index":0}}', "delta.tool_calls is an object, not an array"),
    ('{"tool_calls":[7]}', "delta.tool_calls[0] is a number"),
    ('{"tool_calls":[{"index":-1}]}', "delta.tool_calls[0].index is -1, not a non-negative integer"),
    ('{"tool_calls":[{"index":0,"function":{"arguments":{"q":1}}}]}',
     "delta.tool_calls[0].function.arguments is an object, not a string (the API streams"),
    ('{"tool_calls":[{"index":0,"function":{"name":3}}]}', "delta.tool_calls[0].function.name is a number, not a string"),
    ('{"tool_calls":[{"index":0,"function":"f"}]}', "delta.tool_calls[0].function is a string, not an object"),
])
def test_openai_malformed_tool_call_fields_name_the_field(delta, want):
    stream = f'data: {{"choices":[{{"delta":{{"content":"a"}}}}]}}\n\ndata: {{"choices":[{{"delta":{delta}}}]}}\n\n'
    with pytest.raises(CodecError) as e:
        decode(SseDecoder, [stream.encode()])
    assert e.value.kind == "malformed_stream"
    assert e.value.message.startswith("malformed tool call at line 4: "), e.value.message
    assert want in e.value.message


@pytest.mark.parametrize("calls,want", [
    ("{}", "message.tool_calls is an object, not an array of calls"),
    ("[1]", "message.tool_calls[0] is a number, not an object"),
    ("[{}]", "message.tool_calls[0] has no function"),
    ('[{"function":[]}]', "message.tool_calls[0].function is an array, not an object"),
    ('[{"function":{"arguments":{}}}]', "message.tool_calls[0].function has no name"),
    ('[{"function":{"name":"f","arguments":[1]}}]', "message.tool_calls[0].function.arguments is an array, not an object"),
    ('[{"id":5,"function":{"name":"f"}}]', "message.tool_calls[0].id is a number, not a string"),
])
def test_ollama_malformed_tool_call_fields_name_the_field(calls, want):
    stream = (
        '{"message":{"content":"a"},"done":false}\n'
        f'{{"message":{{"content":"","tool_calls":{calls}}},"done":false}}\n'
    )
    with pytest.raises(CodecError) as e:
        decode(OllamaDecoder, [stream.encode()])
    assert e.value.kind == "malformed_stream"
    assert e.value.message == f"malformed tool call at line 2: {want}"
