"""The run protocol (core::protocol::execute_run), on asyncio.

Each agent its own client for the whole run (``connection.RunClients.for_agent``); a warm-up
call per agent, the first of each distinct (url, model, options) alone and in turn (it loads
the model), the others together (under keep-alive this opens every agent's connection before
anything is measured); a sequential phase (each agent alone, one after
another in a topological order of the agents' graph, each run as its own asyncio task,
like the Rust side); a concurrent phase where every agent is an asyncio task released
together from a barrier: the tasks each report ready, the runner waits for all of them, takes
the release instant, then sets an asyncio.Event; an agent with dependencies then waits for
each of them to finish (a future per agent) and starts at once, given their answers; a
dependent of a failed agent never starts. A call with a tool step is followed by the tool's
latency (``asyncio.sleep``, measured as ``tool_wait_ms``). Phase order and sequential agent
order come from the plan in the ChildJob (RunPlan::alternating on the driver side), so they
alternate exactly as for Rust backends.
"""

from __future__ import annotations

import asyncio
import json
import os
from time import perf_counter_ns
from typing import Optional

import httpx

from .call import Settings, Target, execute_call, ms
from .connection import for_agent
from .live import Counter
from .graph import GraphError, graph_of, topological_order
from .metrics import run_metrics
from .workload import agent_call_body, agent_request_body, agent_url, draw_latency_ms, options_json, tagged, turn

# The phases' names as core's Phase serializes them (Phase::as_str); spelled only here.
WARMUP, SEQUENTIAL, CONCURRENT = "warmup", "sequential", "concurrent"


class AgentJob:
    def __init__(self, agent: dict, api_key: Optional[str], settings: Settings, live_tokens: Optional[Counter] = None,
                 tool_waits: Optional[list] = None):
        self.agent = agent
        self.api_key = api_key
        self.settings = settings
        self.live_tokens = live_tokens
        # tool_waits[i]: the tool step's latency after call i, seconds (None: no tool step)
        self.tool_waits = tool_waits or [None] * len(agent["calls"])


def tool_waits(agent: dict, run_index: int) -> list:
    """Each call's tool wait in seconds (core's protocol::tool_waits): drawn once per run,
    agent and call, so both measured phases wait the same."""
    seed = agent["options"].get("seed") or 0
    waits = []
    for i, c in enumerate(agent["calls"]):
        tool = c.get("tool")
        if tool is None:
            waits.append(None)
        else:
            ms_ = draw_latency_ms(tool["latency_ms"], seed, run_index, agent["id"], i)
            waits.append(max(ms_, 0.0) / 1e3 if ms_ == ms_ else 0.0)
    return waits


def api_keys(agents: list) -> list:
    """Each agent's key from the environment variable its endpoint names (never recorded)."""
    keys = []
    for a in agents:
        var = a["endpoint"].get("api_key_env")
        keys.append(os.environ.get(var) if var else None)
    return keys


def _failed(phase: str, call: dict) -> dict:
    return {"status": "failed", "phase": phase, "agent_id": call["agent_id"], "call": call["call"], "error": call["error"]}


async def _warm_up(clients: list, jobs: list, tokens: int) -> list:
    seen = []
    loaders, rest = [], []
    for i, job in enumerate(jobs):
        a = job.agent
        key = (agent_url(a), a["model"], json.dumps(options_json(a["options"]), sort_keys=True))
        if key in seen:
            rest.append(i)
        else:
            seen.append(key)
            loaders.append(i)
    records = []
    for i in loaders:
        records.append(await _warm_call(clients[i], jobs[i], tokens))
        if records[-1]["error"] is not None:
            return records
    tasks = [asyncio.create_task(_warm_call(clients[i], jobs[i], tokens)) for i in rest]
    for task, i in zip(tasks, rest):
        try:
            records.append(await task)
        except Exception as e:  # noqa: BLE001 - recorded, the run is marked failed
            rec, _, _ = _panic_record(jobs[i], e)
            records.append(dict(rec["calls"][0], call=WARMUP))
    return records


async def _warm_call(client, job: AgentJob, tokens: int) -> dict:
    # No tools in warm-up: one short text call.
    a = dict(job.agent, calls=[{k: v for k, v in c.items() if k != "tool"} for c in job.agent["calls"]])
    opts = dict(a["options"])
    opts["num_predict"] = tokens
    target = Target(
        agent_id=a["id"],
        call=WARMUP,
        url=agent_url(a),
        model=a["model"],
        api=a["endpoint"]["api"],
        body=agent_request_body(a, 0, "", opts),
        api_key=job.api_key,
        num_predict=tokens,
    )
    start = perf_counter_ns()
    record, _, _ = await execute_call(client, target, job.settings, start)
    return record


async def _run_agent(client, job: AgentJob, phase_start: int, outputs: Optional[list] = None) -> tuple:
    """An agent's calls in order, each fed the earlier calls' turns, a tool step's wait after
    its call; stops at a failure. ``outputs``: (id, answer) of the agents it runs after.
    Returns (record, end, its final answer)."""
    a = job.agent
    outputs = outputs or []
    start = perf_counter_ns()
    calls = []
    turns = []
    for i, spec in enumerate(a["calls"]):
        target = Target(
            agent_id=a["id"],
            call=spec["name"],
            url=agent_url(a),
            model=a["model"],
            api=a["endpoint"]["api"],
            body=agent_call_body(a, i, turns, outputs),
            api_key=job.api_key,
            num_predict=a["options"].get("num_predict"),
            live_tokens=job.live_tokens,
        )
        record, text, tool_calls = await execute_call(client, target, job.settings, phase_start)
        turns.append(turn(text, tool_calls))
        failed = record["error"] is not None
        wait = job.tool_waits[i] if i < len(job.tool_waits) else None
        if not failed and wait is not None:
            t = perf_counter_ns()
            await asyncio.sleep(wait)
            record["tool_wait_ms"] = ms(perf_counter_ns() - t)
        calls.append(record)
        if failed:
            break
    end = perf_counter_ns()
    rec = {
        "agent_id": a["id"],
        "start_ms": ms(start - phase_start),
        "duration_ms": ms(end - start),
        "calls": calls,
    }
    return rec, end, turns[-1]["text"] if turns else ""


def _panic_record(job: AgentJob, e: BaseException) -> tuple:
    """A task that raised becomes a failed call record (join_or_panic_record)."""
    a = job.agent
    error = {
        "kind": "request",
        "message": f"agent task failed: task failed: {e!r}",
        "url": agent_url(a),
        "model": a["model"],
        "bytes_received": 0,
        "elapsed_ms": 0.0,
    }
    call = {
        "agent_id": a["id"],
        "call": a["calls"][0]["name"] if a["calls"] else "",
        "url": agent_url(a),
        "model": a["model"],
        "send_offset_ms": 0.0,
        "ttft_ms": None,
        "e2e_ms": 0.0,
        "decode_ms": None,
        "output_tokens": None,
        "text_events": 0,
        "bytes_received": 0,
        "text_offsets_ms": [],
        "client_decode_tok_s": None,
        "tpot_ms": None,
        "gap_ms": None,
        "server": None,
        "server_decode_tok_s": None,
        "cold_load": False,
        "output_preview": "",
        "error": error,
        "ttft_answer_ms": None,
        "reasoning_events": 0,
        "reasoning_tokens": None,
        "answer_tokens": None,
        "output_truncated": False,
        "connections_opened": 0,
        "reconnects": 0,
    }
    rec = {"agent_id": a["id"], "start_ms": 0.0, "duration_ms": 0.0, "calls": [call]}
    return rec, perf_counter_ns(), ""


async def _join(task: asyncio.Task, job: AgentJob) -> tuple:
    try:
        return await task
    except Exception as e:  # noqa: BLE001 - recorded, the run is marked failed
        return _panic_record(job, e)


def _agent_error(rec: dict):
    for c in rec["calls"]:
        if c["error"] is not None:
            return c
    return None


async def _sequential_phase(clients: list, jobs: list, after: list, order: list) -> dict:
    phase_start = perf_counter_ns()
    slots = [None] * len(jobs)
    answers = [""] * len(jobs)
    last_end = phase_start
    for i in order:
        outputs = [(jobs[d].agent["id"], answers[d]) for d in after[i]]
        task = asyncio.create_task(_run_agent(clients[i], jobs[i], phase_start, outputs))
        rec, end, answers[i] = await _join(task, jobs[i])
        last_end = max(last_end, end)
        slots[i] = rec
        if _agent_error(rec) is not None:
            break
    return {
        "phase": SEQUENTIAL,
        "wall_ms": ms(last_end - phase_start),
        "agents": [r for r in slots if r is not None],
    }


async def _concurrent_phase(clients: list, jobs: list, after: list) -> dict:
    n = len(jobs)
    ready: asyncio.Queue = asyncio.Queue(maxsize=max(n, 1))
    go = asyncio.Event()
    release_at: list = []
    loop = asyncio.get_running_loop()
    # done[i]: agent i's final answer when it finished, None when it failed or never started.
    done = [loop.create_future() for _ in range(n)]

    def finish(i: int, answer) -> None:
        if not done[i].done():
            done[i].set_result(answer)

    async def agent_task(i: int, client, job: AgentJob):
        try:
            await ready.put(None)
            await go.wait()
            outputs = []
            for d in after[i]:
                answer = await done[d]
                if answer is None:
                    return None
                outputs.append((jobs[d].agent["id"], answer))
            rec, end, answer = await _run_agent(client, job, release_at[0], outputs)
            finish(i, answer if _agent_error(rec) is None else None)
            return rec, end, answer
        finally:
            finish(i, None)

    tasks = [asyncio.create_task(agent_task(i, c, job)) for i, (c, job) in enumerate(zip(clients, jobs))]
    for _ in range(n):
        await ready.get()
    t0 = perf_counter_ns()
    release_at.append(t0)
    go.set()
    records = []
    last_end = t0
    for task, job in zip(tasks, jobs):
        joined = await _join(task, job)
        if joined is None:
            continue
        rec, end, _ = joined
        last_end = max(last_end, end)
        records.append(rec)
    return {"phase": CONCURRENT, "wall_ms": ms(last_end - t0), "agents": records}


class PhaseObserver:
    """Called between phases, never inside a measured one (core::protocol::PhaseObserver)."""

    def phase_starting(self, phase: str) -> None:
        pass

    def phase_ended(self, phase: str) -> None:
        pass

    def live_tokens(self, index: int) -> Optional[Counter]:
        """A counter the measured calls of agent ``index`` add their text events to, for live
        progress read by another thread; None (the default) for none. Warm-up calls never count."""
        return None


def agent_tag(plan: dict, phase: str, agent: dict) -> str:
    """What leads everything ``agent`` sends in ``phase`` (core's ``protocol::agent_tag``):
    ``{nonce} {phase} {agent id} {run_tag}``, ``run N`` for an empty run tag, no nonce when
    the plan has none."""
    run = plan.get("run_tag") or f"run {plan['run_index']}"
    tag = f"{phase} {agent['id']} {run}"
    nonce = plan.get("prompt_nonce") or ""
    return f"{nonce} {tag}" if nonce else tag


async def execute_run(clients, plan: dict, keys: list, observer: Optional[PhaseObserver] = None) -> dict:
    """Execute a RunPlan (JSON) with ``clients`` (a ``connection.RunClients``; a bare httpx
    client in tests, shared by every agent); returns warmup/sequential/concurrent/metrics/status."""
    observer = observer or PhaseObserver()
    settings = Settings.from_json(plan["settings"])
    live = [observer.live_tokens(i) for i in range(len(plan["agents"]))]

    def jobs_for(phase: str) -> list:
        # Each phase and agent sends its own tag first, as core's Agent::tagged does.
        return [
            AgentJob(tagged(a, agent_tag(plan, phase, a)), keys[i] if i < len(keys) else None, settings, live[i],
                     waits[i])
            for i, a in enumerate(plan["agents"])
        ]

    # Each tool step's latency, drawn once per run, agent and call: the same in both phases.
    waits = [tool_waits(a, plan["run_index"]) for a in plan["agents"]]
    out = {WARMUP: [], SEQUENTIAL: None, CONCURRENT: None, "metrics": None, "status": {"status": "ok"}}
    try:
        after = graph_of(plan["agents"])
    except GraphError as e:
        rec, _, _ = _panic_record(AgentJob(plan["agents"][0], None, settings), e)
        call = dict(rec["calls"][0], call=WARMUP)
        call["error"] = dict(call["error"], message=f"the agents cannot run: {e}; fix the agents' `after` lists")
        out[WARMUP] = [call]
        out["status"] = _failed(WARMUP, call)
        return out
    # Each agent its own client for the whole run (core's HttpClient::for_agent).
    agent_clients = [for_agent(clients, a["endpoint"]) for a in plan["agents"]]
    if plan["warmup_tokens"] > 0:
        observer.phase_starting(WARMUP)
        out[WARMUP] = await _warm_up(agent_clients, jobs_for(WARMUP), plan["warmup_tokens"])
        observer.phase_ended(WARMUP)
        for c in out[WARMUP]:
            if c["error"] is not None:
                out["status"] = _failed(WARMUP, c)
                return out
    if plan.get("concurrent_only", False):
        phases = [CONCURRENT]
    elif plan["phase_order"] == "sequential_first":
        phases = [SEQUENTIAL, CONCURRENT]
    else:
        phases = [CONCURRENT, SEQUENTIAL]
    for phase in phases:
        observer.phase_starting(phase)
        if phase == CONCURRENT:
            record = await _concurrent_phase(agent_clients, jobs_for(phase), after)
        else:
            order = topological_order(after, plan["sequential_order"])
            record = await _sequential_phase(agent_clients, jobs_for(phase), after, order)
        observer.phase_ended(phase)
        out[phase] = record
        failure = None
        for a in record["agents"]:
            c = _agent_error(a)
            if c is not None:
                failure = c
                break
        if failure is not None:
            out["status"] = _failed(phase, failure)
            return out
    if out[SEQUENTIAL] is not None and out[CONCURRENT] is not None:
        out["metrics"] = run_metrics(out[SEQUENTIAL], out[CONCURRENT], after)
    return out

