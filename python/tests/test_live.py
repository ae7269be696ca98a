"""Live progress (`@live` lines on stderr, CHIMERAFORGE_LIVE=1): the same lines as the Rust
child (driver live.rs), parsed here with the grammar of the parent's parser
(`live::parse`: the exact prefix, then a JSON object read into
`LiveSample { phase: String, agents: Vec<String>, tokens: Vec<u64> }`)."""

import asyncio
import json
import os
import subprocess
import sys
import threading
import time

import httpx
import pytest

from chimeraforge_py.child import CostObserver
from chimeraforge_py.live import ENV, INTERVAL_S, PREFIX, LiveCounters, Sampler, format_line
from chimeraforge_py.protocol import execute_run

from conftest import job
from test_protocol import DONE, Server, tok

U64_MAX = 2**64 - 1


def rust_parse(line: str):
    """`live::parse`, stricter where serde would only be lenient: None unless the line starts
    with the prefix; then exactly the three fields, with serde's types (u64 counts)."""
    if not line.startswith(PREFIX):
        return None
    v = json.loads(line[len(PREFIX):])
    assert isinstance(v, dict) and set(v) == {"phase", "agents", "tokens"}, v
    assert isinstance(v["phase"], str)
    assert isinstance(v["agents"], list) and all(isinstance(a, str) for a in v["agents"])
    assert isinstance(v["tokens"], list)
    assert all(type(t) is int and 0 <= t <= U64_MAX for t in v["tokens"]), v
    assert len(v["tokens"]) == len(v["agents"])
    return v


def test_line_is_what_the_rust_sampler_writes():
    # Copied from `CHIMERAFORGE_LIVE=1 chimeraforge child` (tokio-default) on stderr.
    rust = '@live {"agents":["collector","insight"],"phase":"sequential","tokens":[12,0]}'
    line = format_line("sequential", ["collector", "insight"], [12, 0])
    assert line == rust
    assert rust_parse(line) == {"phase": "sequential", "agents": ["collector", "insight"], "tokens": [12, 0]}
    # serde_json writes non-ASCII as UTF-8, not \\u escapes.
    assert format_line("warmup", ["agént"], [0]) == '@live {"agents":["agént"],"phase":"warmup","tokens":[0]}'
    assert rust_parse("warning: something else") is None


def test_counters_restart_at_zero_per_phase():
    c = LiveCounters(2)
    assert c.snapshot() == ("starting", [0, 0])
    c.tokens[1].n += 5
    c.set_phase("concurrent")
    assert c.snapshot() == ("concurrent", [0, 0])
    c.tokens[0].n += 3
    assert c.snapshot() == ("concurrent", [3, 0])


def test_sampler_only_when_asked():
    c = LiveCounters(1)
    assert Sampler.start_if_requested(c, ["a"], env={}) is None
    assert Sampler.start_if_requested(c, ["a"], env={ENV: "0"}) is None
    assert Sampler.start_if_requested(c, ["a"], env={ENV: "true"}) is None
    assert INTERVAL_S == 0.25  # live.rs INTERVAL


def test_sampler_writes_parsable_lines_until_stopped():
    c = LiveCounters(2)
    lines = []
    s = Sampler.start_if_requested(c, ["collector", "insight"], env={ENV: "1"}, write=lines.append, interval_s=0.01)
    assert s is not None and s.alive()
    time.sleep(0.05)
    c.set_phase("sequential")
    c.tokens[0].n += 7
    time.sleep(0.05)
    t0 = time.monotonic()
    s.stop()
    assert time.monotonic() - t0 < 0.2 and not s.alive()
    n = len(lines)
    time.sleep(0.05)
    assert len(lines) == n, "a stopped sampler wrote on"
    samples = []
    for raw in lines:
        assert raw.endswith(b"\n") and raw.count(b"\n") == 1
        samples.append(rust_parse(raw.decode().rstrip("\n")))
    assert samples[0] == {"phase": "starting", "agents": ["collector", "insight"], "tokens": [0, 0]}
    assert {"phase": "sequential", "agents": ["collector", "insight"], "tokens": [7, 0]} in samples
    assert [s["phase"] for s in samples] == sorted((s["phase"] for s in samples), key=["starting", "sequential"].index)


def test_sampler_stops_when_stderr_is_gone():
    def broken(_):
        raise BrokenPipeError

    s = Sampler.start_if_requested(LiveCounters(1), ["a"], env={ENV: "1"}, write=broken, interval_s=0.01)
    deadline = time.monotonic() + 2
    while s.alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not s.alive()
    s.stop()


def test_protocol_counts_each_measured_text_event():
    """The calls add every non-empty text event to their agent's counter, in the measured
    phases only: at each phase's end the counter equals that agent's text events."""

    class Watch(CostObserver):
        def __init__(self):
            super().__init__(LiveCounters(2))
            self.at_end = {}

        def phase_ended(self, phase):
            self.at_end[phase] = self.live.snapshot()
            super().phase_ended(phase)

    def behave(path, body):
        # an empty text event counts for nothing; 4 texts, 3 tokens by the server's count
        texts = 4 if body["options"]["num_predict"] != 2 else 2
        return 200, "application/x-ndjson", [tok("")] + [tok("w"), 0.005] * texts + [DONE]

    async def go():
        async with Server(behave) as srv:
            j = job([srv.url], warmup_tokens=2)
            j["plan"]["agents"][1]["calls"].pop()  # agent 1: one call, agent 0: two
            w = Watch()
            async with httpx.AsyncClient(trust_env=False) as client:
                out = await execute_run(client, j["plan"], [None, None], w)
            return out, w

    out, w = asyncio.run(go())
    assert out["status"] == {"status": "ok"}
    assert w.at_end["warmup"] == ("warmup", [0, 0])
    for phase in ("sequential", "concurrent"):
        events = [sum(c["text_events"] for c in a["calls"]) for a in out[phase]["agents"]]
        assert events == [8, 4]
        assert w.at_end[phase] == (phase, events)


def child(j, backend, live):
    env = {k: v for k, v in os.environ.items() if k != ENV}
    if live:
        env[ENV] = "1"
    p = subprocess.run(
        [sys.executable, "-m", "chimeraforge_py", "child", "--backend", backend],
        input=json.dumps(j).encode(),
        capture_output=True,
        env=env,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr.decode()
    return json.loads(p.stdout), p.stderr.decode()


@pytest.mark.parametrize("backend", ["python-asyncio", "python-uvloop"])
def test_child_reports_live_tokens_only_when_asked(sim_factory, backend):
    a, b = sim_factory("fixed", "ideal"), sim_factory("fixed", "ideal")
    # 2 agents × 2 calls × (50 ms + 39 tokens at 100 tok/s): ~0.9 s sequential, ~0.45 s concurrent.
    j = job([a.url, b.url], run_index=1, backend=backend, num_predict=40)
    rec, stderr = child(j, backend, live=True)
    assert rec["status"] == "ok", rec
    lines = stderr.splitlines()
    samples = [rust_parse(line) for line in lines]
    assert None not in samples, f"stderr holds other lines: {stderr}"
    assert len(samples) >= 4, stderr
    assert all(s["agents"] == ["collector", "insight"] for s in samples)
    # Phases appear in the order they ran (run 1: concurrent first); counts only grow in one.
    order = ["starting", "warmup", "concurrent", "sequential"]
    assert [order.index(s["phase"]) for s in samples] == sorted(order.index(s["phase"]) for s in samples)
    for prev, cur in zip(samples, samples[1:]):
        if prev["phase"] == cur["phase"]:
            assert all(x <= y for x, y in zip(prev["tokens"], cur["tokens"])), (prev, cur)
    for s in samples:
        if s["phase"] in ("starting", "warmup"):
            assert s["tokens"] == [0, 0], s
    for phase in ("sequential", "concurrent"):
        seen = [s["tokens"] for s in samples if s["phase"] == phase]
        assert seen and max(map(sum, seen)) > 0, f"no tokens seen live in the {phase} phase: {stderr}"
        events = [sum(c["text_events"] for c in ag["calls"]) for ag in rec[phase]["agents"]]
        for tokens in seen:
            assert all(t <= e for t, e in zip(tokens, events)), (phase, tokens, events)

    rec, stderr = child(j, backend, live=False)
    assert rec["status"] == "ok" and stderr == ""


def test_sampler_thread_exists_only_when_asked():
    """No thread beside the loop's when not asked (quiet and scripted runs)."""

    def behave(path, body):
        return 200, "application/x-ndjson", [tok("x"), DONE]

    from chimeraforge_py import child as child_mod

    seen = {}

    class Spy(CostObserver):
        def phase_ended(self, phase):
            seen.setdefault(os.environ.get(ENV), set()).update(t.name for t in threading.enumerate())
            super().phase_ended(phase)

    async def go():
        async with Server(behave) as srv:
            return await child_mod.run_job(job([srv.url]), "python-asyncio")

    real = child_mod.CostObserver
    child_mod.CostObserver = Spy
    old = os.environ.pop(ENV, None)
    try:
        asyncio.run(go())
        os.environ[ENV] = "1"
        asyncio.run(go())
    finally:
        child_mod.CostObserver = real
        os.environ.pop(ENV, None)
        if old is not None:
            os.environ[ENV] = old
    assert "live-progress" not in seen[None]
    assert "live-progress" in seen["1"]
    assert "live-progress" not in {t.name for t in threading.enumerate()}, "the sampler outlived its run"
