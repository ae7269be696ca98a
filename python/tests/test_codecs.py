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
