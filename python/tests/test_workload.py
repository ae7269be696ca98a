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


# Agents with tool steps, history and {output:ID}: core::workload's tool_agent and transcript.
def tool_agent(api, history):
    return {
        "id": "w", "label": "w", "system": "S", "model": "m",
        "endpoint": {"name": "e", "base_url": "http://h:1", "api": api},
        "options": {},
        "calls": [
            {"name": "look", "prompt": "Q", "tool": {"name": "web_search", "latency_ms": 200.0}},
            {"name": "use", "prompt": "U {output:up}"},
            {"name": "sum", "prompt": "R {previous}"},
        ],
        "after": ["up"],
        "history": history,
    }


def transcript(tool_calls):
    from chimeraforge_py.workload import turn

    calls = [{"id": "call_1", "name": "web_search", "arguments": '{"query":"x"}'}] if tool_calls else []
    turns = [turn("" if tool_calls else "T0", calls), turn("T1")]
    return turns, [("up", "UP")]


TOOLS = '"tools":[{"function":{"description":"Call web_search with a query; it returns a short text result.","name":"web_search","parameters":{"properties":{"query":{"description":"What to look up.","type":"string"}},"required":["query"],"type":"object"}},"type":"function"}]'
RESULT = "web_search found 3 results. 1. Independent requests overlap on a batching server. 2. A serial device runs one request at a time. 3. The longest chain of dependent steps bounds how fast a graph of agents can finish."

# The same golden strings as core::workload's tool_step_history_and_output_bodies_are_golden,
# as (api, history, call index, the model answered with tool calls, body).
GOLDEN_GRAPH = [
    ("openai-chat", False, 0, True,
     '{"messages":[{"content":"S","role":"system"},{"content":"Q","role":"user"}],"model":"m","stream":true,"stream_options":{"include_usage":true},' + TOOLS + '}'),
    ("ollama", False, 0, True,
     '{"messages":[{"content":"S","role":"system"},{"content":"Q","role":"user"}],"model":"m","options":{},"stream":true,' + TOOLS + '}'),
    ("openai-chat", False, 1, True,
     '{"messages":[{"content":"S","role":"system"},{"content":"Q","role":"user"},{"content":"","role":"assistant","tool_calls":[{"function":{"arguments":"{\\"query\\":\\"x\\"}","name":"web_search"},"id":"call_1","type":"function"}]},{"content":"' + RESULT + '","role":"tool","tool_call_id":"call_1"},{"content":"U UP","role":"user"}],"model":"m","stream":true,"stream_options":{"include_usage":true}}'),
    ("ollama", False, 1, True,
     '{"messages":[{"content":"S","role":"system"},{"content":"Q","role":"user"},{"content":"","role":"assistant","tool_calls":[{"function":{"arguments":{"query":"x"},"name":"web_search"}}]},{"content":"' + RESULT + '","role":"tool","tool_name":"web_search"},{"content":"U UP","role":"user"}],"model":"m","options":{},"stream":true}'),
    ("ollama", False, 1, False,
     '{"messages":[{"content":"S","role":"system"},{"content":"Q","role":"user"},{"content":"T0","role":"assistant"},{"content":"Result of web_search: ' + RESULT + '","role":"user"},{"content":"U UP","role":"user"}],"model":"m","options":{},"stream":true}'),
    ("openai-chat", False, 2, False,
     '{"messages":[{"content":"S","role":"system"},{"content":"R T1","role":"user"}],"model":"m","stream":true,"stream_options":{"include_usage":true}}'),
    ("openai-chat", True, 2, False,
     '{"messages":[{"content":"S","role":"system"},{"content":"Q","role":"user"},{"content":"T0","role":"assistant"},{"content":"Result of web_search: ' + RESULT + '","role":"user"},{"content":"U UP","role":"user"},{"content":"T1","role":"assistant"},{"content":"R T1","role":"user"}],"model":"m","stream":true,"stream_options":{"include_usage":true}}'),
]


def test_tool_step_history_and_output_bodies_match_rust_byte_for_byte():
    from chimeraforge_py.workload import agent_call_body

    for i, (api, history, index, tool_calls, want) in enumerate(GOLDEN_GRAPH):
        turns, outputs = transcript(tool_calls)
        assert agent_call_body(tool_agent(api, history), index, turns, outputs).decode() == want, i


def test_a_prompt_driven_tool_is_not_offered():
    # core::workload's a_prompt_driven_tool_is_not_offered
    from chimeraforge_py.workload import agent_call_body

    a = tool_agent("openai-chat", False)
    a["calls"][0]["tool"]["offer"] = False
    turns, outputs = transcript(False)
    assert agent_call_body(a, 0, turns, outputs).decode() == (
        '{"messages":[{"content":"S","role":"system"},{"content":"Q","role":"user"}],"model":"m","stream":true,"stream_options":{"include_usage":true}}'
    )
    assert ('{"content":"Result of web_search: ' + RESULT + '","role":"user"}') in agent_call_body(a, 1, turns, outputs).decode()


def test_bodies_without_the_new_features_are_unchanged_and_prompts_grow_with_history():
    from chimeraforge_py.workload import agent_call_body, agent_request_body

    a = tool_agent("openai-chat", False)
    a["calls"][0].pop("tool")
    for i in range(3):
        prompt = a["calls"][i]["prompt"].replace("{previous}", "prev")
        assert agent_request_body(a, i, "prev") == request_body("openai-chat", "m", "S", prompt, {}), i
    h = tool_agent("ollama", True)
    turns, outputs = transcript(False)
    lens = [len(agent_call_body(h, i, turns, outputs)) for i in range(3)]
    assert lens[0] < lens[1] < lens[2], lens


def test_latency_draws_match_rust():
    from chimeraforge_py.workload import draw_latency_ms

    assert draw_latency_ms(200.0, 1, 2, "a", 3) == 200.0
    u = {"min": 100.0, "max": 300.0}
    # The same values as core::workload's latencies_are_fixed_or_drawn_reproducibly_within_bounds.
    assert draw_latency_ms(u, 0, 0, "a", 0) == 174.34619268708184
    assert draw_latency_ms(u, 42, 3, "worker-2", 1) == 244.98387079878864
    draws = [draw_latency_ms(u, 7, run, "worker", 0) for run in range(50)]
    assert all(100.0 <= d < 300.0 for d in draws) and len(set(draws)) > 1
