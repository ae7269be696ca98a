"""metrics.run_metrics on the cases of core::metrics's own tests (same numbers, same flags)."""

import math

from chimeraforge_py.metrics import jain_index, percentiles, run_metrics


def call(ttft, e2e, tokens):
    return {"agent_id": "a", "call": "c", "ttft_ms": ttft, "e2e_ms": e2e, "decode_ms": e2e - ttft,
            "output_tokens": {"value": tokens, "basis": "measured"}, "text_events": tokens, "cold_load": False}


def phase(name, wall, agents):
    return {"phase": name, "wall_ms": wall, "agents": [
        {"agent_id": f"a{i}", "start_ms": 0.0, "duration_ms": d, "calls": [call(t, d, n)]}
        for i, (d, t, n) in enumerate(agents)]}


def test_shared_device_reads_one_measured_but_two_estimated():
    m = run_metrics(phase("sequential", 2000.0, [(1000.0, 50.0, 100)] * 2),
                    phase("concurrent", 2000.0, [(2000.0, 1050.0, 100), (2000.0, 50.0, 100)]))
    assert abs(m["speedup"]["value"] - 1.0) < 1e-9 and m["speedup"]["basis"] == "measured"
    assert abs(m["estimated_speedup"]["value"] - 2.0) < 1e-9 and m["estimated_speedup"]["basis"] == "estimated"
    assert m["flags"]["low_speedup"]
    assert abs(m["ttft_delta_ms"] - 1000.0) < 1e-9
    assert m["per_agent"][0]["slowdown"] == 2.0
    assert abs(m["fairness"] - 1.0) < 1e-12
    assert m["token_normalized_speedup"] is None


def test_ideal_concurrency_reads_two():
    m = run_metrics(phase("sequential", 2000.0, [(1000.0, 50.0, 100)] * 2),
                    phase("concurrent", 1000.0, [(1000.0, 50.0, 100)] * 2))
    assert abs(m["efficiency"]["value"] - 1.0) < 1e-9
    assert not m["flags"]["low_speedup"]
    assert abs(m["system_throughput_tok_s"]["value"] - 200.0) < 1e-9
    assert m["system_throughput_tok_s"]["basis"] == "measured"


def test_length_mismatch_gets_a_normalized_speedup():
    m = run_metrics(phase("sequential", 2000.0, [(1000.0, 50.0, 400)] * 2),
                    phase("concurrent", 1000.0, [(1000.0, 50.0, 400), (200.0, 50.0, 80)]))
    assert m["flags"]["length_mismatch"]
    assert m["token_normalized_speedup"]["basis"] == "estimated"
    assert abs(m["token_normalized_speedup"]["value"] - 1.2) < 1e-9


def test_ttft_anomaly_above_three_seconds():
    m = run_metrics(phase("sequential", 2000.0, [(1000.0, 50.0, 10)] * 2),
                    phase("concurrent", 3500.0, [(3500.0, 3001.0, 10), (1000.0, 50.0, 10)]))
    assert m["flags"]["ttft_anomaly"]


def test_efficiency_exactly_three_quarters_is_not_low():
    m = run_metrics(phase("sequential", 3000.0, [(1500.0, 1.0, 10)] * 2),
                    phase("concurrent", 2000.0, [(2000.0, 1.0, 10)] * 2))
    assert m["efficiency"]["value"] == 0.75 and not m["flags"]["low_speedup"]


def test_percentiles_and_jain():
    p = percentiles([1.0, 2.0, 3.0, 4.0, 5.0])
    assert p["p50"] == 3.0 and abs(p["p90"] - 4.6) < 1e-12 and p["max"] == 5.0
    assert percentiles([]) is None and percentiles([math.nan]) is None
    assert abs(jain_index([1.0, 1.0]) - 1.0) < 1e-12
    assert abs(jain_index([1.0, 0.0]) - 0.5) < 1e-12
    assert jain_index([]) is None


def test_a_sample_with_a_nan_infinity_or_negative_has_no_statistic():
    # core's a_sample_with_a_nan_infinity_or_negative_has_no_statistic, same numbers
    for bad in (math.nan, math.inf, -math.inf):
        assert percentiles([1.0, bad]) is None
        assert jain_index([1.0, bad]) is None
    assert jain_index([1.0, -1.0]) is None
    assert jain_index([0.0, 0.0]) is None
    assert jain_index([1e300, 1e300]) == 1.0


def test_prompt_cache_flags_a_first_call_served_mostly_from_cache():
    # core's prompt_cache_flags_a_first_call_served_mostly_from_cache, same numbers
    def run(first, second):
        seq = phase("sequential", 2000.0, [(1000.0, 50.0, 10)] * 2)
        conc = phase("concurrent", 1000.0, [(1000.0, 50.0, 10)] * 2)
        later = dict(conc["agents"][1]["calls"][0])
        conc["agents"][1]["calls"][0]["server"] = {"prompt_tokens": first[0], "cached_prompt_tokens": first[1]}
        later["server"] = {"prompt_tokens": second[0], "cached_prompt_tokens": second[1]}
        conc["agents"][1]["calls"].append(later)
        return run_metrics(seq, conc)["flags"]["prompt_cache"]

    assert run((133, 128), (150, 40))
    assert not run((133, 20), (150, 40))
    assert not run((133, 20), (150, 140))
    assert not run((40, 20), (150, 0))
    assert not run((100, 89), (150, 0))
    assert run((100, 90), (150, 0))
    assert not run_metrics(phase("sequential", 2.0, [(1.0, 0.5, 1)] * 2),
                           phase("concurrent", 1.0, [(1.0, 0.5, 1)] * 2))["flags"]["prompt_cache"]


def test_two_independent_agents_have_the_slower_one_as_critical_path():
    rows = [(1000.0, 50.0, 100), (600.0, 50.0, 60)]
    m = run_metrics(phase("sequential", 1600.0, rows), phase("concurrent", 1000.0, rows))
    assert m["critical_path_ms"] == 1000.0
    assert abs(m["graph_ceiling"]["value"] - 1.6) < 1e-12 and m["graph_ceiling"]["basis"] == "measured"
    assert abs(m["graph_efficiency"]["value"] - 1.0) < 1e-12 and m["graph_efficiency"]["basis"] == "measured"
    assert abs(m["efficiency"]["value"] - 0.8) < 1e-12


def test_a_fan_out_fan_in_graph_reads_its_ceiling_and_efficiency():
    # docs/methodology.md's worked example, as core::metrics tests it
    after = [[], [0], [0], [0], [1, 2, 3]]
    rows = [(d, 10.0, 10) for d in (100.0, 200.0, 500.0, 300.0, 50.0)]
    m = run_metrics(phase("sequential", 1150.0, rows), phase("concurrent", 800.0, rows), after)
    assert m["critical_path_ms"] == 650.0
    assert abs(m["graph_ceiling"]["value"] - 1150.0 / 650.0) < 1e-12
    assert abs(m["graph_efficiency"]["value"] - 650.0 / 800.0) < 1e-12
    assert run_metrics(phase("sequential", 1150.0, rows), phase("concurrent", 800.0, rows))["critical_path_ms"] == 500.0
    # low_speedup for a graph: against its ceiling, not N (core's test, same numbers)
    assert not m["flags"]["low_speedup"]
    assert run_metrics(phase("sequential", 1150.0, rows), phase("concurrent", 800.0, rows))["flags"]["low_speedup"]
    assert run_metrics(phase("sequential", 1150.0, rows), phase("concurrent", 1000.0, rows), after)["flags"]["low_speedup"]
