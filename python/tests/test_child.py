"""The child entry point end to end: `python -m chimeraforge_py child` against the simulator
(`target/debug/chimeraforge sim` as a subprocess on a free port), its RunRecord validated
against schema/run-record.schema.json (generated from the Rust types)."""

import copy
import json
import os
import subprocess
import sys

import jsonschema
import pytest

from conftest import ROOT, check_client_cost, job

SCHEMA_PATH = ROOT / "schema" / "run-record.schema.json"


def strict(schema):
    """The schema with unknown properties rejected everywhere (serde would ignore them, but a
    field the Rust types do not have is a Python bug)."""
    s = copy.deepcopy(schema)

    def walk(node, branch=False):
        # Branches of oneOf/anyOf/allOf (a flattened enum) are checked by their parent.
        if isinstance(node, dict):
            if node.get("type") == "object" and "properties" in node and not branch:
                node["unevaluatedProperties"] = False
            for k, v in node.items():
                walk(v, k in ("oneOf", "anyOf", "allOf"))
        elif isinstance(node, list):
            for v in node:
                walk(v, branch)

    walk(s)
    return s


@pytest.fixture(scope="module")
def validator():
    schema = json.loads(SCHEMA_PATH.read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(strict(schema))


def child(j, backend, env=None):
    p = subprocess.run(
        [sys.executable, "-m", "chimeraforge_py", "child", "--backend", backend],
        input=json.dumps(j).encode(),
        capture_output=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )
    return p.returncode, p.stdout.decode(), p.stderr.decode()


# Calls long enough that the Python client's own per-call cost (connect, request, first read;
# first tokens 10-23 ms past schedule against the debug simulator) is a small part of each
# call. That cost is paid in full by every sequential call but partly hidden behind the
# other agent in the concurrent phase, so it moves the measured speedup by about cost / call
# length: 24-token calls (280 ms) read 1.02-1.06 on a serial device, 64 tokens (680 ms)
# 1.01-1.03, 96 tokens (1 s) about 1.01.
IDEAL_TOKENS = 64
SERIAL_TOKENS = 96


@pytest.mark.parametrize("backend", ["python-asyncio", "python-uvloop"])
@pytest.mark.parametrize("api", ["ollama", "openai-chat"])
def test_child_on_ideal_simulator(sim_factory, validator, backend, api):
    a, b = sim_factory("fixed", "ideal"), sim_factory("fixed", "ideal")
    for run_index in (0, 1):
        j = job([a.url, b.url], run_index, backend, api, num_predict=IDEAL_TOKENS)
        rc, out, err = child(j, backend)
        assert rc == 0, err
        assert out.endswith("\n") and out.count("\n") == 1
        rec = json.loads(out)
        validator.validate(rec)
        assert rec["status"] == "ok", rec
        assert rec["backend"] == backend and rec["run_index"] == run_index
        assert rec["phase_order"] == ("sequential_first" if run_index == 0 else "concurrent_first")
        m = rec["metrics"]
        assert abs(m["speedup"]["value"] - 2.0) <= 0.1, m["speedup"]
        assert m["speedup"]["basis"] == "measured"
        for phase in ("sequential", "concurrent"):
            for agent in rec[phase]["agents"]:
                for c in agent["calls"]:
                    assert c["output_tokens"] == {"value": IDEAL_TOKENS, "basis": "measured"}
        assert rec["client"]["user_cpu_s"] > 0 and rec["client"]["peak_rss_kib"] > 0
        assert {p["phase"] for p in rec["client"]["phases"]} == {"warmup", "sequential", "concurrent"}
        check_client_cost(rec)
        # Two endpoints: two warm-up calls of 4 tokens; 2 agents x 2 calls per phase.
        per_phase = 2 * 2 * IDEAL_TOKENS
        assert [p["output_tokens"] for p in rec["client"]["phases"]] == [8, per_phase, per_phase]


def test_serial_device_measures_one(sim_factory, validator):
    s = sim_factory("fixed", "serial")
    rc, out, err = child(job([s.url], num_predict=SERIAL_TOKENS), "python-asyncio")
    assert rc == 0, err
    rec = json.loads(out)
    validator.validate(rec)
    assert abs(rec["metrics"]["speedup"]["value"] - 1.0) <= 0.05, rec["metrics"]["speedup"]
    assert rec["metrics"]["estimated_speedup"]["value"] > 1.5
    assert rec["metrics"]["flags"]["low_speedup"]


def test_failed_run_record_validates(validator):
    rc, out, err = child(job(["http://127.0.0.1:9"]), "python-asyncio")
    assert rc == 0, err
    rec = json.loads(out)
    validator.validate(rec)
    assert rec["status"] == "failed" and rec["phase"] == "warmup"
    assert rec["error"]["kind"] == "connect" and rec["metrics"] is None
    check_client_cost(rec)


def test_uvloop_missing_means_unavailable(tmp_path):
    fake = tmp_path / "uvloop"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise ImportError('uvloop hidden for this test')\n")
    env = {"PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT / 'python'}"}
    rc, out, err = child(job(["http://127.0.0.1:9"], backend="python-uvloop"), "python-uvloop", env)
    assert rc == 3 and out == "" and "python-uvloop is unavailable" in err
    p = subprocess.run([sys.executable, "-m", "chimeraforge_py", "backends"], capture_output=True,
                       env={**os.environ, **env}, timeout=60)
    assert p.stdout.decode().splitlines() == ["python-asyncio", "python-uvloop (unavailable: uvloop not installed)"]


def test_bad_job_is_a_usage_error():
    p = subprocess.run([sys.executable, "-m", "chimeraforge_py", "child"], input=b"{nope",
                       capture_output=True, timeout=60)
    assert p.returncode == 2 and b"parsing the job" in p.stderr
