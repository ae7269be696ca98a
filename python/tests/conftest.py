"""Shared helpers: a ChildJob built like the driver builds one, and a simulator fixture."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SIM_BIN = Path(os.environ.get("CHIMERAFORGE_BIN", ROOT / "target" / "debug" / "chimeraforge"))

SYSTEM = "You are DataCollector, a concise telemetry analyst."


def agent(i: int, base_url: str, api: str = "ollama", num_predict: int = 24) -> dict:
    """A seed-like agent (two calls, the second quoting the first), chimera-homo options."""
    return {
        "id": ["collector", "insight"][i % 2] + ("" if i < 2 else str(i)),
        "label": f"Agent{i}",
        "system": SYSTEM,
        "model": "gemma3:latest",
        "endpoint": {"name": f"sim{i}", "base_url": base_url, "api": api},
        "options": {"num_gpu": 80, "num_ctx": 512, "temperature": 1.0, "num_predict": num_predict, "seed": 42},
        "calls": [
            {"name": "analysis", "prompt": "List five patterns, one sentence each."},
            {"name": "report", "prompt": "Write a short report.\n\nAnalysis:\n{previous}"},
        ],
    }


def job(base_urls: list, run_index: int = 0, backend: str = "python-asyncio", api: str = "ollama",
        num_predict: int = 24, warmup_tokens: int = 4, timeouts=None) -> dict:
    """A ChildJob with RunPlan::alternating's phase and agent order."""
    agents = [agent(i, base_urls[i % len(base_urls)], api, num_predict) for i in range(2)]
    even = run_index % 2 == 0
    n = len(agents)
    return {
        "backend": backend,
        "model": "gemma3:latest",
        "scenario": "chimera-homo",
        "client": {"connect_timeout": 5000.0},
        "plan": {
            "run_index": run_index,
            "agents": agents,
            "phase_order": "sequential_first" if even else "concurrent_first",
            "sequential_order": list(range(n)) if even else list(reversed(range(n))),
            "warmup_tokens": warmup_tokens,
            "settings": {
                "timeouts": timeouts or {"first_byte_ms": 60000.0, "idle_ms": 30000.0, "total_ms": 600000.0},
                "max_line_bytes": 1 << 20,
                "cold_load_threshold_ms": 500.0,
                "runaway_factor": 4.0,
                "max_response_bytes": 64 << 20,
            },
        },
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sim:
    def __init__(self, profile: str, device: str):
        if not SIM_BIN.exists():
            pytest.skip(f"{SIM_BIN} not built (cargo build -p chimeraforge) - simulator tests skipped")
        self.port = free_port()
        self.proc = subprocess.Popen(
            [str(SIM_BIN), "sim", "--port", str(self.port), "--profile", profile, "--device", device],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"simulator exited with {self.proc.returncode}")
                time.sleep(0.05)
        self.close()
        raise RuntimeError("simulator did not start listening")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def sim_factory():
    sims = []

    def start(profile: str = "fixed", device: str = "ideal") -> Sim:
        s = Sim(profile, device)
        sims.append(s)
        return s

    yield start
    for s in sims:
        s.close()


PHASE_COST_FIELDS = {
    "phase", "wall_s", "user_cpu_s", "system_cpu_s", "peak_rss_kib",
    "voluntary_ctx_switches", "involuntary_ctx_switches", "output_tokens",
}


def call_tokens(c: dict) -> int:
    """The server's count, else the text events the client decoded (backends::call_tokens)."""
    return c["output_tokens"]["value"] if c["output_tokens"] is not None else c["text_events"]


def record_tokens(rec: dict) -> dict:
    """Output tokens per phase, counted from the record's own call records."""
    out = {"warmup": sum(call_tokens(c) for c in rec["warmup"])}
    for phase in ("sequential", "concurrent"):
        if rec[phase] is not None:
            out[phase] = sum(call_tokens(c) for a in rec[phase]["agents"] for c in a["calls"])
    return out


def check_client_cost(rec: dict, warmup: bool = True) -> None:
    """``client`` and ``client.phases`` of a RunRecord are what the Rust child writes: one
    entry per phase that ran, in the order it ran, each a getrusage difference, tokens from
    the record itself, and the whole-process totals at least the sum of the phases.
    ``warmup``: the job asked for a warm-up (warmup_tokens > 0)."""
    cost = rec["client"]
    assert cost["user_cpu_s"] >= 0 and cost["system_cpu_s"] >= 0
    assert cost["user_cpu_s"] + cost["system_cpu_s"] > 0
    assert cost["peak_rss_kib"] > 0
    phases = cost.get("phases", [])
    ran = ["warmup"] if warmup else []
    order = ["sequential", "concurrent"] if rec["phase_order"] == "sequential_first" else ["concurrent", "sequential"]
    for p in order:
        if rec[p] is not None:
            ran.append(p)
    assert [p["phase"] for p in phases] == ran
    tokens = record_tokens(rec)
    peak = 0
    for p in phases:
        assert set(p) == PHASE_COST_FIELDS, p
        for k in ("peak_rss_kib", "voluntary_ctx_switches", "involuntary_ctx_switches", "output_tokens"):
            assert isinstance(p[k], int) and p[k] >= 0, (k, p)
        assert p["wall_s"] > 0 and p["user_cpu_s"] >= 0 and p["system_cpu_s"] >= 0, p
        # The observer brackets the phase: its wall covers the phase record's wall.
        if p["phase"] != "warmup":
            assert p["wall_s"] >= rec[p["phase"]]["wall_ms"] / 1e3, p
            # A phase that streamed waited for its server: the loop slept in epoll at least once.
            if rec["status"] == "ok":
                assert p["voluntary_ctx_switches"] > 0, p
        # VmHWM never decreases; the totals are sampled last.
        assert p["peak_rss_kib"] > 0 and p["peak_rss_kib"] >= peak, p
        peak = p["peak_rss_kib"]
        assert p["output_tokens"] == tokens[p["phase"]], (p, tokens)
    assert sum(p["output_tokens"] for p in phases) == sum(tokens.values())
    assert cost["peak_rss_kib"] >= peak
    eps = 1e-6
    assert sum(p["user_cpu_s"] for p in phases) <= cost["user_cpu_s"] + eps
    assert sum(p["system_cpu_s"] for p in phases) <= cost["system_cpu_s"] + eps
    assert sum(p["voluntary_ctx_switches"] for p in phases) <= cost["voluntary_ctx_switches"]
    assert sum(p["involuntary_ctx_switches"] for p in phases) <= cost["involuntary_ctx_switches"]
