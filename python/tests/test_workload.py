"""Request bodies are byte-identical to core::workload::request_body (golden output of the Rust
function: serde_json writes keys sorted and floats like 1.0 as `1.0`)."""

from chimeraforge_py.workload import agent_url, request_body

OPTS = {"num_gpu": 80, "num_ctx": 512, "temperature": 1.0, "top_p": 0.9, "num_predict": 24, "seed": 42,
        "top_k": None}
PROMPT = 'Hi "日本"\n{x}'

GOLDEN = {
    "ollama": '{"messages":[{"content":"Sys é","role":"system"},{"content":"Hi \\"日本\\"\\n{x}","role":"user"}],"model":"gemma3:latest","options":{"num_ctx":512,"num_gpu":80,"num_predict":24,"seed":42,"temperature":1.0,"top_p":0.9},"stream":true}',
    "ollama-generate": '{"model":"gemma3:latest","options":{"num_ctx":512,"num_gpu":80,"num_predict":24,"seed":42,"temperature":1.0,"top_p":0.9},"prompt":"Hi \\"日本\\"\\n{x}","stream":true,"system":"Sys é"}',
    "openai-chat": '{"max_tokens":24,"messages":[{"content":"Sys é","role":"system"},{"content":"Hi \\"日本\\"\\n{x}","role":"user"}],"model":"gemma3:latest","seed":42,"stream":true,"stream_options":{"include_usage":true},"temperature":1.0,"top_p":0.9}',
    "openai-completions": '{"max_tokens":24,"model":"gemma3:latest","prompt":"Sys é\\n\\nHi \\"日本\\"\\n{x}","seed":42,"stream":true,"stream_options":{"include_usage":true},"temperature":1.0,"top_p":0.9}',
}


def test_bodies_match_rust_byte_for_byte():
    for api, want in GOLDEN.items():
        assert request_body(api, "gemma3:latest", "Sys é", PROMPT, OPTS).decode() == want, api


def test_empty_system_and_default_options():
    assert request_body("ollama", "m", "", "p", {}) == b'{"messages":[{"content":"p","role":"user"}],"model":"m","options":{},"stream":true}'


def test_url_joins_base_and_path():
    a = {"endpoint": {"base_url": "http://h:1//", "api": "openai-chat"}}
    assert agent_url(a) == "http://h:1/v1/chat/completions"


def test_tagged_leads_the_system_prompt_or_every_call_prompt():
    from chimeraforge_py.workload import tagged

    a = {"system": "You plan.", "calls": [{"name": "c", "prompt": "p"}]}
    assert tagged(a, "run 0 sequential")["system"] == "[run 0 sequential] You plan."
    assert a["system"] == "You plan."  # the plan's agent is not modified
    b = tagged(dict(a, system=""), "run 1 warmup")
    assert b["calls"][0]["prompt"] == "[run 1 warmup] p"


# The same golden strings as core::workload's think_bodies_are_golden test.
GOLDEN_THINK = {
    "ollama": '{"messages":[{"content":"p","role":"user"}],"model":"m","options":{},"stream":true,"think":"high"}',
    "ollama-generate": '{"model":"m","options":{},"prompt":"p","stream":true,"think":"high"}',
    "openai-chat": '{"messages":[{"content":"p","role":"user"}],"model":"m","reasoning_effort":"high","stream":true,"stream_options":{"include_usage":true}}',
    "openai-completions": '{"model":"m","prompt":"p","stream":true,"stream_options":{"include_usage":true}}',
}


def test_think_bodies_match_rust_byte_for_byte():
    for api, want in GOLDEN_THINK.items():
        assert request_body(api, "m", "", "p", {"think": "high"}).decode() == want, api
    assert b'"think":true' in request_body("ollama", "m", "", "p", {"think": True})
    assert b"reasoning_effort" not in request_body("openai-chat", "m", "", "p", {"think": True})
