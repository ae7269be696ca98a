"""The measured child process: one run of one cell, ChildJob JSON in, RunRecord JSON line out.

    python -m chimeraforge_py child --backend python-asyncio   < job.json
    python -m chimeraforge_py child --backend python-uvloop    < job.json
    python -m chimeraforge_py backends                          # what this environment can run

Exit codes: 0 record written; 2 bad job or usage; 3 backend unavailable (uvloop missing).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import platform
import resource
import sys
import time
from importlib import metadata
from typing import Optional

import httpx

from .live import LiveCounters, Sampler
from .connection import KEEP_ALIVE, RunClients, new_httpx_client
from .protocol import CONCURRENT, SEQUENTIAL, WARMUP, PhaseObserver, api_keys, execute_run
from .redact import redact_json

SCHEMA_VERSION = 1
BACKENDS = ("python-asyncio", "python-uvloop")
# httpcore reads the socket this many bytes at a time (httpcore/_async/http11.py
# READ_NUM_BYTES); aiter_raw() with no chunk_size hands each read over as it arrives.
HTTPCORE_READ_BYTES = 64 * 1024


class Unavailable(Exception):
    pass


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "?"


def uvloop_available() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def available_backends() -> list:
    return [b for b in BACKENDS if b != "python-uvloop" or uvloop_available()]


def runtime_facts(backend: str) -> dict:
    if backend == "python-uvloop":
        scheduler = f"uvloop {_version('uvloop')} event loop (libuv), one thread"
    else:
        scheduler = "asyncio default event loop (selector/epoll), one thread"
    return {
        "scheduler": scheduler,
        "worker_threads": 1,
        "http_client": f"httpx {_version('httpx')} (httpcore {_version('httpcore')}, h11 {_version('h11')})",
        "read_buffer_bytes": HTTPCORE_READ_BYTES,
        "notes": [
            ["python", f"{platform.python_implementation()} {platform.python_version()}"],
            [
                "body_read",
                "Response.aiter_raw() without chunk_size: each socket read (up to 64 KiB) is handed "
                "over as it arrives; nothing is held back to fill a buffer",
            ],
            ["clock", "time.perf_counter_ns"],
            [
                "timeouts",
                "first-byte, idle and total per read, on the loop's timer: asyncio.timeout() around the "
                "request, one lazily re-armed timer for the body reads; connect timeout by httpx",
            ],
            ["request_headers", "accept-encoding: identity; trust_env=False (no proxies from the environment)"],
            ["connection_limit", "none (httpx.Limits(max_connections=None); httpx's default of 100 would queue agents past the 100th)"],
            [
                "connection_reuse",
                "keep-alive: one httpx client (one pool) per agent, idle connections never expired by the client; "
                "a request whose reused connection closed before the response head is sent once more on a new one; "
                "every connection counted through httpcore's trace extension. fresh: one client keeping no idle "
                "connection, and Connection: close on every request",
            ],
        ],
    }


def peak_rss_since_exec_kib(status_path: str = "/proc/self/status") -> Optional[int]:
    """High-water mark of resident memory of this program image (``VmHWM``), KiB.

    Not ``ru_maxrss``: Linux keeps that across ``execve``, so a child started by a large
    parent reports the parent's peak (driver::child::peak_rss_since_exec_kib)."""
    try:
        with open(status_path, "rb") as f:
            for line in f:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def client_cost() -> dict:
    """CPU, memory and context switches of this process so far (getrusage RUSAGE_SELF: every
    thread, the live sampler's included), as driver::child::client_cost."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    peak = peak_rss_since_exec_kib()
    return {
        "user_cpu_s": ru.ru_utime,
        "system_cpu_s": ru.ru_stime,
        "peak_rss_kib": peak if peak is not None else int(ru.ru_maxrss),  # Linux: KiB
        "voluntary_ctx_switches": int(ru.ru_nvcsw),
        "involuntary_ctx_switches": int(ru.ru_nivcsw),
    }


class CostObserver(PhaseObserver):
    """getrusage at each phase boundary, never inside a phase (driver::child::CostObserver):
    one PhaseCost per phase. Also hands the calls their live-progress counters, when there are
    any."""

    def __init__(self, live: Optional[LiveCounters] = None):
        self.open = None
        self.phases: list = []
        self.live = live

    def live_tokens(self, index: int):
        if self.live is None or index >= len(self.live.tokens):
            return None
        return self.live.tokens[index]

    def phase_starting(self, phase: str) -> None:
        if self.live is not None:
            self.live.set_phase(phase)
        before = client_cost()
        self.open = (phase, before, time.perf_counter_ns())

    def phase_ended(self, phase: str) -> None:
        end = time.perf_counter_ns()
        after = client_cost()
        if self.open is None:
            return
        started, before, start = self.open
        self.open = None
        if started != phase:
            return
        self.phases.append(
            {
                "phase": phase,
                "wall_s": (end - start) / 1e9,
                "user_cpu_s": max(after["user_cpu_s"] - before["user_cpu_s"], 0.0),
                "system_cpu_s": max(after["system_cpu_s"] - before["system_cpu_s"], 0.0),
                "peak_rss_kib": after["peak_rss_kib"],
                "voluntary_ctx_switches": max(after["voluntary_ctx_switches"] - before["voluntary_ctx_switches"], 0),
                "involuntary_ctx_switches": max(
                    after["involuntary_ctx_switches"] - before["involuntary_ctx_switches"], 0
                ),
                "output_tokens": 0,
            }
        )


def _call_tokens(c: dict) -> int:
    """The server's count, else the text events the client decoded."""
    return c["output_tokens"]["value"] if c["output_tokens"] is not None else c["text_events"]


def _phase_tokens(p) -> int:
    return 0 if p is None else sum(_call_tokens(c) for a in p["agents"] for c in a["calls"])


def _finite(v):
    """serde_json writes non-finite floats as null; do the same instead of NaN/Infinity."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_finite(x) for x in v]
    return v


def new_client(connect_timeout_s: float, policy: str = KEEP_ALIVE) -> httpx.AsyncClient:
    """A client as the run's agents get them (see ``connection.new_httpx_client``)."""
    return new_httpx_client(connect_timeout_s, policy)


async def run_job(job: dict, backend: str) -> dict:
    plan = job["plan"]
    connect_s = float(job["client"]["connect_timeout"]) / 1e3
    # Absent in a job from a driver before connection policies: its default.
    policy = job["client"].get("connection", KEEP_ALIVE)
    started_unix_ms = int(time.time() * 1000)
    async with RunClients(connect_s, policy) as client:
        # The sampler runs only when the parent asked (CHIMERAFORGE_LIVE=1), as in the Rust
        # child (driver backends::run_job); it is stopped before the record is built.
        live = LiveCounters(len(plan["agents"]))
        sampler = Sampler.start_if_requested(live, [a["id"] for a in plan["agents"]])
        costs = CostObserver(live if sampler is not None else None)
        try:
            outcome = await execute_run(client, plan, api_keys(plan["agents"]), costs)
        finally:
            if sampler is not None:
                sampler.stop()
    for cost in costs.phases:
        if cost["phase"] == WARMUP:
            cost["output_tokens"] = sum(_call_tokens(c) for c in outcome[WARMUP])
        else:
            cost["output_tokens"] = _phase_tokens(outcome[cost["phase"]])
    record = {
        "schema_version": SCHEMA_VERSION,
        "backend": backend,
        "model": job["model"],
        "scenario": job["scenario"],
        "run_index": plan["run_index"],
        "started_unix_ms": started_unix_ms,
        "runtime": runtime_facts(backend),
        "phase_order": plan["phase_order"],
        "sequential_order": plan["sequential_order"],
        "agents": plan["agents"],
        "warmup": outcome[WARMUP],
        "sequential": outcome[SEQUENTIAL],
        "concurrent": outcome[CONCURRENT],
        "metrics": outcome["metrics"],
    }
    record.update(outcome["status"])
    record["connection"] = policy
    for key in ("run_tag", "prompt_nonce"):  # skip_serializing_if = "String::is_empty"
        if plan.get(key):
            record[key] = plan[key]
    record["_phase_costs"] = costs.phases
    return record


def run(job: dict, backend: str) -> dict:
    """Run ``job`` on a fresh event loop of ``backend``; the record includes getrusage."""
    if backend not in BACKENDS:
        raise Unavailable(f"unknown Python backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    if backend == "python-uvloop":
        try:
            import uvloop
        except ImportError:
            raise Unavailable(
                "backend python-uvloop is unavailable: uvloop is not installed in this Python "
                "(scripts/python-env.sh installs it)"
            ) from None
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    else:
        asyncio.set_event_loop_policy(asyncio.DefaultEventLoopPolicy())
    record = asyncio.run(run_job(job, backend))
    phases = record.pop("_phase_costs")
    record["client"] = client_cost()
    if phases:  # skip_serializing_if = "Vec::is_empty"
        record["client"]["phases"] = phases
    return _finite(record)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m chimeraforge_py")
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("child", help="run one ChildJob read from stdin, write one RunRecord line")
    c.add_argument("--backend", choices=BACKENDS, help="default: the job's backend")
    sub.add_parser("backends", help="list the Python backends this environment can run")
    args = p.parse_args(argv)
    if args.cmd == "backends":
        for b in BACKENDS:
            print(b if b in available_backends() else f"{b} (unavailable: uvloop not installed)")
        return 0
    try:
        job = json.loads(sys.stdin.read())
    except json.JSONDecodeError as e:
        print(f"error: parsing the job: {e}", file=sys.stderr)
        return 2
    backend = args.backend or job.get("backend")
    if args.backend and job.get("backend") not in (None, args.backend):
        print(f"error: --backend {args.backend} but the job is for {job.get('backend')}", file=sys.stderr)
        return 2
    try:
        record = run(job, backend)
    except Unavailable as e:
        print(f"error: {e}", file=sys.stderr)
        return 3
    # A server may echo the Authorization header; the key never reaches the record.
    record = redact_json(record, api_keys(job["plan"]["agents"]))
    sys.stdout.write(json.dumps(record, ensure_ascii=False, allow_nan=False))
    sys.stdout.write("\n")
    sys.stdout.flush()
    return 0
