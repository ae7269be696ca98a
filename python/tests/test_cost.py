"""The record's ``client`` and ``client.phases``, as the Rust child fills them
(driver::child::client_cost and CostObserver): getrusage(RUSAGE_SELF) at each phase boundary,
VmHWM for the peak, output tokens per phase from the record's own calls."""

import asyncio
import json
import os
import resource
import subprocess
import sys

from chimeraforge_py import child
from chimeraforge_py.child import CostObserver, client_cost, peak_rss_since_exec_kib
from chimeraforge_py.live import LiveCounters

from conftest import ROOT, check_client_cost, job, record_tokens
from test_protocol import DONE, Server, tok


def test_peak_rss_parses_vmhwm(tmp_path):
    status = tmp_path / "status"
    status.write_text("Name:\tpython\nVmPeak:\t  999999 kB\nVmHWM:\t   31234 kB\nVmRSS:\t   30000 kB\n")
    assert peak_rss_since_exec_kib(str(status)) == 31234
    status.write_text("Name:\tpython\nVmRSS:\t   30000 kB\n")
    assert peak_rss_since_exec_kib(str(status)) is None
    assert peak_rss_since_exec_kib(str(tmp_path / "missing")) is None


def test_client_cost_is_vmhwm_with_maxrss_fallback(monkeypatch):
    c = client_cost()
    hwm = peak_rss_since_exec_kib()
    assert hwm is not None and hwm > 0
    # The peak can only grow between the two reads.
    assert 0 < c["peak_rss_kib"] <= hwm
    assert set(c) == {"user_cpu_s", "system_cpu_s", "peak_rss_kib", "voluntary_ctx_switches", "involuntary_ctx_switches"}
    monkeypatch.setattr(child, "peak_rss_since_exec_kib", lambda: None)
    assert child.client_cost()["peak_rss_kib"] == resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def test_peak_rss_is_not_the_parents():
    """A child started by a process that once held 160 MiB: ru_maxrss carries the parent's
    peak across execve (so it would say >= 160 MiB), VmHWM is the child's own."""
    child_code = (
        "import json, resource; from chimeraforge_py.child import client_cost; "
        "print(json.dumps([client_cost()['peak_rss_kib'], resource.getrusage(resource.RUSAGE_SELF).ru_maxrss]))"
    )
    parent_code = (
        "import subprocess, sys\n"
        "big = b'x' * (160 << 20)\n"
        f"sys.stdout.write(subprocess.run([sys.executable, '-c', {child_code!r}], capture_output=True, text=True, check=True).stdout)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "python")}
    out = subprocess.run([sys.executable, "-c", parent_code], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    peak, maxrss = json.loads(out.stdout)
    assert maxrss >= 160 << 10, "precondition: Linux carries ru_maxrss across exec"
    assert 0 < peak < 100 << 10, peak


def test_observer_records_one_cost_per_phase():
    live = LiveCounters(2)
    o = CostObserver(live)
    live.tokens[1].n = 5
    o.phase_starting("sequential")
    assert live.phase == "sequential" and [t.n for t in live.tokens] == [0, 0]
    assert o.live_tokens(1) is live.tokens[1] and o.live_tokens(2) is None
    x = 0
    for i in range(2_000_000):  # ~0.1 s of CPU on this machine
        x = (x * 31 + i) & 0xFFFFFFFF
    o.phase_ended("sequential")
    o.phase_ended("concurrent")  # no matching start: ignored
    assert len(o.phases) == 1
    p = o.phases[0]
    assert p["phase"] == "sequential"
    assert p["wall_s"] > 0 and p["user_cpu_s"] > 0 and p["system_cpu_s"] >= 0
    assert p["user_cpu_s"] + p["system_cpu_s"] <= p["wall_s"] * os.cpu_count() + 0.02
    assert p["peak_rss_kib"] > 0 and p["output_tokens"] == 0
    assert CostObserver().live_tokens(0) is None


def test_run_job_fills_client_phases_in_process():
    """The whole child path (run_job + run's totals) against an in-test server: every phase
    that ran has its cost, with tokens equal to the record's own."""

    def behave(path, body):
        n = body["options"]["num_predict"]
        return 200, "application/x-ndjson", [tok("x"), 0.01] * (n - 1) + [tok("y"), DONE]

    async def go(run_index):
        async with Server(behave) as srv:
            j = job([srv.url], run_index=run_index, num_predict=6, warmup_tokens=3)
            return await child.run_job(j, "python-asyncio")

    for run_index in (0, 1):
        rec = asyncio.run(go(run_index))
        assert rec["status"] == "ok", rec
        rec["client"] = client_cost()
        rec["client"]["phases"] = rec.pop("_phase_costs")
        check_client_cost(rec)
        # DONE says eval_count 2 (the server's count wins over the 6 text events); one
        # warm-up call per agent (it opens the agent's kept-alive connection).
        assert record_tokens(rec) == {"warmup": 4, "sequential": 8, "concurrent": 8}
        assert [c["connections_opened"] for c in rec["warmup"]] == [1, 1]


def test_failed_warmup_still_costs_its_phase():
    rec = child.run(job(["http://127.0.0.1:9"]), "python-asyncio")
    assert rec["status"] == "failed" and rec["phase"] == "warmup"
    check_client_cost(rec)
    assert [p["output_tokens"] for p in rec["client"]["phases"]] == [0]


def test_no_warmup_means_no_warmup_cost():
    rec = child.run(job(["http://127.0.0.1:9"], warmup_tokens=0), "python-asyncio")
    assert rec["status"] == "failed" and rec["phase"] == "sequential"
    check_client_cost(rec, warmup=False)
