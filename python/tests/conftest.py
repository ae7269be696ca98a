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
