"""Request bodies, as core::workload::request_body builds them.

serde_json (without `preserve_order`) writes object keys sorted, so the bodies here use
``sort_keys=True`` and compact separators: the same bytes the Rust backends send.
"""

from __future__ import annotations

import json
from typing import Optional

from .codecs import API_PATHS

PREVIOUS = "{previous}"


def options_json(options: dict) -> dict:
    """ModelOptions as serialized: fields that are None are left out."""
    return {k: v for k, v in options.items() if v is not None}


def request_body(api: str, model: str, system: str, prompt: str, options: dict) -> bytes:
    def messages():
        m = []
        if system:
            m.append({"role": "system", "content": system})
        m.append({"role": "user", "content": prompt})
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
    if think is not None:
        if api in ("ollama", "ollama-generate"):
            body["think"] = think
        elif api == "openai-chat" and isinstance(think, str):
            body["reasoning_effort"] = think
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def agent_url(agent: dict) -> str:
    ep = agent["endpoint"]
    return ep["base_url"].rstrip("/") + API_PATHS[ep["api"]]


def agent_request_body(agent: dict, index: int, previous: str, options: Optional[dict] = None) -> bytes:
    prompt = agent["calls"][index]["prompt"].replace(PREVIOUS, previous)
    return request_body(
        agent["endpoint"]["api"],
        agent["model"],
        agent["system"],
        prompt,
        agent["options"] if options is None else options,
    )


def tagged(agent: dict, tag: str) -> dict:
    """The agent with ``[tag] `` first in what it sends (core's ``Agent::tagged``): its system
    prompt, or every call's prompt when it has none, so no prefix cache spans two phases."""
    a = dict(agent)
    if a["system"]:
        a["system"] = f"[{tag}] {a['system']}"
    else:
        a["calls"] = [dict(c, prompt=f"[{tag}] {c['prompt']}") for c in a["calls"]]
    return a
