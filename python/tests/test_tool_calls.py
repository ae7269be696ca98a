"""Tool-call streams through the whole call (core::call's tool-call measuring): a tool-call
chunk is generated output (first token, events, token counts), the calls come back
assembled, and only answer text goes on as the call's text."""

import json
from time import perf_counter_ns

import httpx

from chimeraforge_py.call import Target, execute_call
from test_protocol import Server, run, settings


def sse(delta, finish=None):
    chunk = {"id": "c", "object": "chat.completion.chunk",
             "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


def fragment(index, arguments, head=None):
    call = {"index": index, "function": {"arguments": arguments}}
    if head is not None:
        call["id"], call["type"], call["function"]["name"] = head[0], "function", head[1]
    return sse({"tool_calls": [call]})


async def tool_call(script, api):
    async with Server(lambda p, b: (200, "text/event-stream" if api == "openai-chat" else "application/x-ndjson",
                                    script)) as srv:
        async with httpx.AsyncClient(trust_env=False) as client:
            t = Target("a", "search", srv.url + "/x", "m", api, b"{}")
            return await execute_call(client, t, settings(), perf_counter_ns())


def test_openai_parallel_tool_calls_are_measured_and_assembled():
    script = [
        sse({"role": "assistant", "content": ""}),
        0.15,
        fragment(0, "", ("call_a", "web_search")),
        fragment(1, "", ("call_b", "fetch")),
        fragment(0, '{"query": '),
        fragment(1, '{"url": "x"}'),
        fragment(0, '"日本"}'),
        sse({}, "tool_calls"),
        b'data: {"id":"c","choices":[],"usage":{"prompt_tokens":20,"completion_tokens":7,"total_tokens":27}}\n\n',
        b"data: [DONE]\n\n",
    ]
    rec, text, calls = run(tool_call(script, "openai-chat"))
    assert rec["error"] is None, rec["error"]
    # the empty opening chunk is no token: the first one is the first tool-call chunk
    assert rec["ttft_ms"] >= 100, rec["ttft_ms"]
    assert rec["ttft_answer_ms"] is None
    assert (rec["text_events"], rec["tool_call_events"], rec["tool_calls"]) == (5, 5, 2)
    assert len(rec["text_offsets_ms"]) == 5
    assert rec["output_tokens"] == {"value": 7, "basis": "measured"}
    assert rec["decode_ms"] is not None and rec["tpot_ms"] is not None
    assert text == "" and rec["output_preview"] == ""
    assert calls == [
        {"id": "call_a", "name": "web_search", "arguments": '{"query": "日本"}'},
        {"id": "call_b", "name": "fetch", "arguments": '{"url": "x"}'},
    ]


def test_ollama_text_then_a_whole_tool_call():
    def line(message, done=False, **extra):
        return json.dumps({"model": "m", "message": {"role": "assistant", **message}, "done": done, **extra}).encode() + b"\n"

    script = [
        line({"content": "Looking"}),
        line({"content": "", "tool_calls": [{"function": {"name": "web_search", "arguments": {"query": "日本", "n": 2}}}]}),
        line({"content": ""}, True, done_reason="stop"),
    ]
    rec, text, calls = run(tool_call(script, "ollama"))
    assert rec["error"] is None, rec["error"]
    assert rec["ttft_ms"] == rec["ttft_answer_ms"]
    assert (rec["text_events"], rec["tool_call_events"], rec["tool_calls"]) == (2, 1, 1)
    # no server count: the events are counted
    assert rec["output_tokens"] == {"value": 2, "basis": "estimated"}
    assert text == "Looking"
    assert calls == [{"id": "call_0", "name": "web_search", "arguments": '{"n":2,"query":"日本"}'}]


def test_a_malformed_tool_call_fails_the_call_as_a_malformed_stream():
    script = [sse({"tool_calls": [{"index": 0, "function": {"arguments": {"q": 1}}}]})]
    rec, _, calls = run(tool_call(script, "openai-chat"))
    assert rec["error"]["kind"] == "malformed_stream"
    assert rec["error"]["message"].startswith("malformed tool call at line 2: delta.tool_calls[0].function.arguments")
    assert calls == []


def test_the_simulator_answers_with_a_tool_call_on_both_apis(sim_factory):
    sim = sim_factory("null")
    tools = [{"type": "function", "function": {"name": "web_search", "description": "search",
              "parameters": {"type": "object", "properties": {"query": {"type": "string"}}}}}]
    messages = [{"role": "user", "content": "find the weather"}]
    bodies = {
        "openai-chat": ("/v1/chat/completions", {"model": "gemma3:latest", "stream": True, "max_tokens": 6,
                                                 "stream_options": {"include_usage": True},
                                                 "tools": tools, "messages": messages}),
        "ollama": ("/api/chat", {"model": "gemma3:latest", "options": {"num_predict": 6},
                                 "tools": tools, "messages": messages}),
    }
    queries = []
    for api, (path, body) in bodies.items():
        async def go():
            async with httpx.AsyncClient(trust_env=False) as client:
                t = Target("a", "search", sim.url + path, "gemma3:latest", api, json.dumps(body).encode(),
                           num_predict=6)
                return await execute_call(client, t, settings(), perf_counter_ns())

        rec, text, calls = run(go())
        assert rec["error"] is None, (api, rec["error"])
        assert text == ""
        assert rec["output_tokens"] == {"value": 6, "basis": "measured"}, api
        # OpenAI: the call's head and a fragment per token; Ollama: the whole call
        assert rec["tool_call_events"] == (7 if api == "openai-chat" else 1), api
        assert rec["text_events"] == rec["tool_call_events"]
        assert len(calls) == 1 and calls[0]["name"] == "web_search"
        assert calls[0]["id"].startswith("call_")
        queries.append(json.loads(calls[0]["arguments"])["query"])
    assert queries[0] == queries[1]
