"""https on the Python client (connection.TlsTrust), against ``chimeraforge sim --tls``: the
endpoint's ``ca_file`` trusted besides certifi's roots, keep-alive and fresh counted as over
plain http, a wrong CA failing with the endpoint and ca_file named, ``tls_insecure``."""

from __future__ import annotations

import asyncio
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from chimeraforge_py.connection import FRESH, KEEP_ALIVE, RunClients, TlsTrust, _ssl_context
from chimeraforge_py.protocol import execute_run

from conftest import SIM_BIN, free_port, job


class TlsSim:
    """``chimeraforge sim --tls`` on a free port; its CA file is where the simulator writes it."""

    def __init__(self):
        if not SIM_BIN.exists():
            pytest.skip(f"{SIM_BIN} not built (cargo build -p chimeraforge) - simulator tests skipped")
        self.port = free_port()
        self.proc = subprocess.Popen(
            [str(SIM_BIN), "sim", "--tls", "--port", str(self.port), "--profile", "fixed"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.ca_file = Path(tempfile.gettempdir()) / f"chimeraforge-sim-{self.proc.pid}-{self.port}-ca.pem"
        deadline = time.monotonic() + 20
        while not self.ca_file.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError("the TLS simulator did not start")
            time.sleep(0.05)
        # Written once listening; the file's content may lag its creation by a moment.
        while "END CERTIFICATE" not in self.ca_file.read_text():
            time.sleep(0.01)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)


@pytest.fixture
def tls_sims():
    sims = []

    def start() -> TlsSim:
        s = TlsSim()
        sims.append(s)
        return s

    yield start
    for s in sims:
        s.close()


def https_job(sim: TlsSim, **endpoint) -> dict:
    j = job([sim.url], num_predict=4)
    for a in j["plan"]["agents"]:
        a["endpoint"].update(name="secure-sim", **endpoint)
    return j


def calls_of(out: dict) -> list:
    return out["warmup"] + [c for p in ("sequential", "concurrent") for a in out[p]["agents"] for c in a["calls"]]


def run_plan(j: dict, policy: str) -> dict:
    async def go():
        async with RunClients(5.0, policy) as clients:
            return await execute_run(clients, j["plan"], [None, None])

    return asyncio.run(go())


def test_trust_of_an_endpoint_and_one_context_per_ca_file(tls_sims):
    sim = tls_sims()
    assert TlsTrust.of({"name": "a"}).verify() is _ssl_context()
    t = TlsTrust.of({"name": "a", "ca_file": str(sim.ca_file)})
    assert t.verify() is _ssl_context(str(sim.ca_file)) is not _ssl_context()
    assert TlsTrust.of({"name": "a", "tls_insecure": True}).verify() is False
    msg = t.certificate_error("https://h:1/x", "unknown issuer")
    assert '"a"' in msg and "https://h:1/x" in msg and str(sim.ca_file) in msg and "ca_file" in msg


def test_https_with_ca_file_keep_alive_and_fresh(tls_sims):
    sim = tls_sims()
    j = https_job(sim, ca_file=str(sim.ca_file))
    out = run_plan(j, KEEP_ALIVE)
    assert out["status"] == {"status": "ok"}, out["status"]
    for agent in ("collector", "insight"):
        calls = [c for c in calls_of(out) if c["agent_id"] == agent]
        assert [c["connections_opened"] for c in calls] == [1, 0, 0, 0, 0], agent
        assert all(c["url"].startswith("https://") for c in calls)
    out = run_plan(j, FRESH)
    assert out["status"] == {"status": "ok"}, out["status"]
    assert [c["connections_opened"] for c in calls_of(out)] == [1] * len(calls_of(out))


def test_wrong_ca_names_the_endpoint_and_ca_file_and_insecure_runs(tls_sims):
    sim, other = tls_sims(), tls_sims()
    out = run_plan(https_job(sim, ca_file=str(other.ca_file)), KEEP_ALIVE)
    assert out["status"]["status"] != "ok"
    e = out["warmup"][0]["error"]
    assert e["kind"] == "connect", e
    for part in ('"secure-sim"', sim.url, "ca_file", str(other.ca_file)):
        assert part in e["message"], (part, e["message"])
    # No ca_file: certifi's roots do not know the simulator's CA; the fix says what to set.
    out = run_plan(https_job(sim), KEEP_ALIVE)
    assert "tls_insecure" in out["warmup"][0]["error"]["message"]
    out = run_plan(https_job(sim, tls_insecure=True), KEEP_ALIVE)
    assert out["status"] == {"status": "ok"}, out["status"]
