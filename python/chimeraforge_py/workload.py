"""Request bodies, as core::workload::request_body builds them.

serde_json (without `preserve_order`) writes object keys sorted, so the bodies here use
``sort_keys=True`` and compact separators: the same bytes the Rust backends send.
"""

from __future__ import annotations

import json
from typing import Optional

from .codecs import API_PATHS

PREVIOUS = "{previous}"
OUTPUT_OPEN = "{output:"
MASK64 = (1 << 64) - 1


def options_json(options: dict) -> dict:
    """ModelOptions as serialized: fields that are None are left out."""
    return {k: v for k, v in options.items() if v is not None}


def tool_result(name: str) -> str:
    """The fixed text a tool step returns (core's ``workload::tool_result``)."""
    return (
        f"{name} found 3 results. 1. Independent requests overlap on a batching server. "
        "2. A serial device runs one request at a time. 3. The longest chain of dependent "
        "steps bounds how fast a graph of agents can finish."
    )


def _fnv1a(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & MASK64
    return h


def _splitmix64(x: int) -> int:
    z = (x + 0x9E3779B97F4A7C15) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def draw_latency_ms(latency, seed: int, run_index: int, agent_id: str, call: int) -> float:
    """A tool step's latency (core's ``Latency::draw``): a number is fixed; ``{min, max}`` is
    drawn uniformly from the agent's seed, the run, the agent and the call."""
    if not isinstance(latency, dict):
        return float(latency)
    lo, hi = float(latency["min"]), float(latency["max"])
    key = (seed ^ _fnv1a(agent_id.encode("utf-8")) ^ ((run_index << 32) & MASK64) ^ call) & MASK64
    u = (_splitmix64(key) >> 11) / float(1 << 53)
    return lo + (hi - lo) * u


def _tools_json(tool: dict) -> list:
    name = tool["name"]
    return [{
        "type": "function",
        "function": {
            "name": name,
            "description": f"Call {name} with a query; it returns a short text result.",
            "parameters": {
                "type": "object",
                "properties": {"query": {"type": "string", "description": "What to look up."}},
                "required": ["query"],
            },
        },
    }]


def _message_json(api: str, m: tuple) -> dict:
    """A message after the system prompt, as ``api`` spells it (core's ``message_json``):
    ("user", text), ("assistant", turn) or ("tool", tool call, result)."""
    kind = m[0]
    ollama = api in ("ollama", "ollama-generate")
    if kind == "user":
        return {"role": "user", "content": m[1]}
    if kind == "assistant":
        turn = m[1]
        if not turn["tool_calls"]:
            return {"role": "assistant", "content": turn["text"]}
        calls = []
        for c in turn["tool_calls"]:
            if ollama:
                try:
                    args = json.loads(c["arguments"])
                except ValueError:
                    args = c["arguments"]
                calls.append({"function": {"name": c["name"], "arguments": args}})
            else:
                calls.append({"id": c["id"], "type": "function",
                              "function": {"name": c["name"], "arguments": c["arguments"]}})
        return {"role": "assistant", "content": turn["text"], "tool_calls": calls}
    call, result = m[1], m[2]
    if ollama:
        return {"role": "tool", "content": result, "tool_name": call["name"]}
    return {"role": "tool", "content": result, "tool_call_id": call["id"]}


def request_body(api: str, model: str, system: str, prompt: str, options: dict) -> bytes:
    return chat_body(api, model, system, [("user", prompt)], None, options)


def _offered(tool: Optional[dict]) -> Optional[dict]:
    """The tool a call's request offers: none for a prompt-driven tool (``offer = false``)."""
    return tool if tool is not None and tool.get("offer", True) else None


def chat_body(api: str, model: str, system: str, msgs: list, tool: Optional[dict], options: dict) -> bytes:
    """core's ``workload::chat_body``: ``msgs`` after the system prompt, offering ``tool``."""
    prompt = msgs[-1][1] if msgs and msgs[-1][0] == "user" else ""

    def messages():
        m = []
        if system:
            m.append({"role": "system", "content": system})
        m.extend(_message_json(api, x) for x in msgs)
        return m

    opts = options_json(options)
    # Ollama takes `think` beside `options`; OpenAI chat an effort level as reasoning_effort
    think = opts.pop("think", None)
    if api == "ollama":
        body = {"model": model, "messages": messages(), "stream": True, "options": opts}
    elif api == "ollama-generate":
        body = {"model": model, "prompt": prompt, "stream": True, "options": opts}
        if system:
            body["system"] = system
    elif api in ("openai-chat", "openai-completions"):
        body = {"model": model}
        if api == "openai-chat":
            body["messages"] = messages()
        else:
            body["prompt"] = prompt if not system else f"{system}\n\n{prompt}"
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
        for ours, theirs in (
            ("num_predict", "max_tokens"),
            ("temperature", "temperature"),
            ("top_p", "top_p"),
            ("seed", "seed"),
        ):
            if opts.get(ours) is not None:
                body[theirs] = opts[ours]
    else:
        raise ValueError(f"unknown API {api!r}")
    if tool is not None and api in ("ollama", "openai-chat"):
        body["tools"] = _tools_json(tool)
    if think is not None:
        if api in ("ollama", "ollama-generate"):
            body["think"] = think
        elif api == "openai-chat" and isinstance(think, str):
            body["reasoning_effort"] = think
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def agent_url(agent: dict) -> str:
    ep = agent["endpoint"]
    return ep["base_url"].rstrip("/") + API_PATHS[ep["api"]]


def turn(text: str = "", tool_calls: Optional[list] = None) -> dict:
    """What one call returned (core's ``Turn``): its answer text and tool calls."""
    return {"text": text, "tool_calls": tool_calls or []}


def agent_prompt(agent: dict, index: int, turns: list, outputs: list) -> str:
    """Call ``index``'s prompt as sent (core's ``Agent::prompt``)."""
    previous = turns[index - 1]["text"] if 0 < index <= len(turns) else ""
    prompt = agent["calls"][index]["prompt"].replace(PREVIOUS, previous)
    for agent_id, text in outputs:
        prompt = prompt.replace(f"{OUTPUT_OPEN}{agent_id}}}", text)
    return prompt


def agent_call_body(agent: dict, index: int, turns: list, outputs: list, options: Optional[dict] = None) -> bytes:
    """core's ``Agent::call_body``: call ``index`` after ``turns`` (this agent's earlier calls
    in the phase) given ``outputs`` ((id, answer) of the agents it runs after)."""
    calls = agent["calls"]
    if agent.get("history"):
        earlier = list(range(index))
    elif index > 0 and calls[index - 1].get("tool") is not None:
        earlier = [index - 1]
    else:
        earlier = []
    msgs = []
    for j in earlier:
        t = turns[j] if j < len(turns) else turn()
        msgs.append(("user", agent_prompt(agent, j, turns, outputs)))
        msgs.append(("assistant", t))
        tool = calls[j].get("tool")
        if tool is not None:
            result = tool_result(tool["name"])
            if not t["tool_calls"]:
                msgs.append(("user", f"Result of {tool['name']}: {result}"))
            else:
                msgs.extend(("tool", c, result) for c in t["tool_calls"])
    msgs.append(("user", agent_prompt(agent, index, turns, outputs)))
    return chat_body(
        agent["endpoint"]["api"],
        agent["model"],
        agent["system"],
        msgs,
        _offered(calls[index].get("tool")),
        agent["options"] if options is None else options,
    )


def agent_request_body(agent: dict, index: int, previous: str, options: Optional[dict] = None) -> bytes:
    """The body of call ``index`` given the previous call's text (core's ``Agent::request_body``)."""
    turns = [turn() for _ in range(index)]
    if turns:
        turns[-1]["text"] = previous
    return agent_call_body(agent, index, turns, [], options)


def tagged(agent: dict, tag: str) -> dict:
    """The agent with ``[tag] `` first in what it sends (core's ``Agent::tagged``): its system
    prompt, or every call's prompt when it has none, so no prefix cache spans two phases."""
    a = dict(agent)
    if a["system"]:
        a["system"] = f"[{tag}] {a['system']}"
    else:
        a["calls"] = [dict(c, prompt=f"[{tag}] {c['prompt']}") for c in a["calls"]]
    return a
