"""The run protocol (core::protocol::execute_run), on asyncio.

Each agent its own client for the whole run (``connection.RunClients.for_agent``); a warm-up
call per agent, the first of each distinct (url, model, options) alone and in turn (it loads
the model), the others together (under keep-alive this opens every agent's connection before
anything is measured); a sequential phase (each agent alone, one after
another, each run as its own asyncio task, like the Rust side); a concurrent phase where
every agent is an asyncio task released together from a barrier: the tasks each report
ready, the runner waits for all of them, takes the release instant, then sets an
asyncio.Event. Phase order and sequential agent order come from the plan in the ChildJob
(RunPlan::alternating on the driver side), so they alternate exactly as for Rust backends.
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
from .metrics import run_metrics
from .workload import agent_request_body, agent_url, options_json, tagged

# The phases' names as core's Phase serializes them (Phase::as_str); spelled only here.
WARMUP, SEQUENTIAL, CONCURRENT = "warmup", "sequential", "concurrent"


class AgentJob:
    def __init__(self, agent: dict, api_key: Optional[str], settings: Settings, live_tokens: Optional[Counter] = None):
        self.agent = agent
        self.api_key = api_key
        self.settings = settings
        self.live_tokens = live_tokens


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
            rec, _ = _panic_record(jobs[i], e)
            records.append(dict(rec["calls"][0], call=WARMUP))
    return records


async def _warm_call(client, job: AgentJob, tokens: int) -> dict:
    a = job.agent
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
    record, _ = await execute_call(client, target, job.settings, start)
    return record


async def _run_agent(client, job: AgentJob, phase_start: int) -> tuple:
    """An agent's calls in order, each fed the previous call's text; stops at a failure."""
    a = job.agent
    start = perf_counter_ns()
    calls = []
    previous = ""
    for i, spec in enumerate(a["calls"]):
        target = Target(
            agent_id=a["id"],
            call=spec["name"],
            url=agent_url(a),
            model=a["model"],
            api=a["endpoint"]["api"],
            body=agent_request_body(a, i, previous),
            api_key=job.api_key,
            num_predict=a["options"].get("num_predict"),
            live_tokens=job.live_tokens,
        )
        record, text = await execute_call(client, target, job.settings, phase_start)
        calls.append(record)
        previous = text
        if record["error"] is not None:
            break
    end = perf_counter_ns()
    rec = {
        "agent_id": a["id"],
        "start_ms": ms(start - phase_start),
        "duration_ms": ms(end - start),
        "calls": calls,
    }
    return rec, end


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
    return rec, perf_counter_ns()


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


async def _sequential_phase(clients: list, jobs: list, order: list) -> dict:
    phase_start = perf_counter_ns()
    slots = [None] * len(jobs)
    last_end = phase_start
    for i in order:
        task = asyncio.create_task(_run_agent(clients[i], jobs[i], phase_start))
        rec, end = await _join(task, jobs[i])
        last_end = max(last_end, end)
        slots[i] = rec
        if _agent_error(rec) is not None:
            break
    return {
        "phase": SEQUENTIAL,
        "wall_ms": ms(last_end - phase_start),
        "agents": [r for r in slots if r is not None],
    }


async def _concurrent_phase(clients: list, jobs: list) -> dict:
    n = len(jobs)
    ready: asyncio.Queue = asyncio.Queue(maxsize=max(n, 1))
    go = asyncio.Event()
    release_at: list = []

    async def agent_task(client, job: AgentJob):
        await ready.put(None)
        await go.wait()
        return await _run_agent(client, job, release_at[0])

    tasks = [asyncio.create_task(agent_task(c, job)) for c, job in zip(clients, jobs)]
    for _ in range(n):
        await ready.get()
    t0 = perf_counter_ns()
    release_at.append(t0)
    go.set()
    records = []
    last_end = t0
    for task, job in zip(tasks, jobs):
        rec, end = await _join(task, job)
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
            AgentJob(tagged(a, agent_tag(plan, phase, a)), keys[i] if i < len(keys) else None, settings, live[i])
            for i, a in enumerate(plan["agents"])
        ]

    out = {WARMUP: [], SEQUENTIAL: None, CONCURRENT: None, "metrics": None, "status": {"status": "ok"}}
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
            record = await _concurrent_phase(agent_clients, jobs_for(phase))
        else:
            record = await _sequential_phase(agent_clients, jobs_for(phase), plan["sequential_order"])
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
        out["metrics"] = run_metrics(out[SEQUENTIAL], out[CONCURRENT])
    return out

