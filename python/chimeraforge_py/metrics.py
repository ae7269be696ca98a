"""Per-run metrics, computed exactly as core::metrics::run_metrics (docs/methodology.md).

Records here are the JSON-shaped dicts that are written (CallRecord, PhaseRecord, ...), so
the figures are computed from the same numbers a reader of runs.jsonl sees.
"""

from __future__ import annotations

import math
import sys
from typing import Optional

from .graph import critical_path

TTFT_ANOMALY_MS = 3000.0
LOW_EFFICIENCY = 0.75
F64_EPSILON = sys.float_info.epsilon  # f64::EPSILON


def figure(value: float, basis: str) -> dict:
    return {"value": value, "basis": basis}


def percentiles(xs: list) -> Optional[dict]:
    """p50/p90/p99/max (core's metrics::percentiles): None when empty or holding a NaN or
    infinity, which is a broken measurement, not a value to skip."""
    if not xs or not all(math.isfinite(x) for x in xs):
        return None
    v = sorted(xs)
    return {"p50": percentile_sorted(v, 50.0), "p90": percentile_sorted(v, 90.0),
            "p99": percentile_sorted(v, 99.0), "max": v[-1]}


def percentile_sorted(v: list, p: float) -> float:
    """core's metrics::percentile_sorted: numpy's linear interpolation (type 7), the lerp taken
    from the nearer end as numpy does."""
    h = (len(v) - 1) * (p / 100.0)
    lo = math.floor(h)
    hi = min(lo + 1, len(v) - 1)
    a, b, t = v[lo], v[hi], h - lo
    diff = b - a
    return b - diff * (1.0 - t) if t >= 0.5 else a + diff * t


def jain_index(xs: list) -> Optional[float]:
    """core's metrics::jain_index: None when empty, holding a NaN, infinity or negative value,
    or all zeros; computed over x / max so the squares cannot overflow."""
    if not xs or any(not math.isfinite(x) or x < 0.0 for x in xs):
        return None
    top = 0.0
    for x in xs:
        top = max(top, x)
    if top == 0.0:
        return None
    s = 0.0
    sq = 0.0
    for x in xs:
        y = x / top
        s += y
        sq += y * y
    return min(s * s / (len(xs) * sq), 1.0)


def agent_output_tokens(agent: dict) -> tuple:
    """(Σ output tokens, whether every count was server-reported) — AgentPhaseRecord::output_tokens."""
    total = 0
    all_measured = True
    for c in agent["calls"]:
        t = c["output_tokens"]
        if t is not None:
            total += t["value"]
            all_measured = all_measured and t["basis"] == "measured"
        else:
            all_measured = False
    return total, all_measured


def _decode_rate(agent: dict) -> Optional[float]:
    tokens = 0.0
    secs = 0.0
    for c in agent["calls"]:
        t, d = c["output_tokens"], c["decode_ms"]
        if t is not None and d is not None and t["value"] > 1 and d > 0.0:
            tokens += float(t["value"] - 1)
            secs += d / 1e3
    return tokens / secs if secs > 0.0 else None


def _mean_ttft(agent: dict, key: str = "ttft_ms") -> Optional[float]:
    v = [c[key] for c in agent["calls"] if c.get(key) is not None]
    if not v:
        return None
    s = 0.0
    for x in v:
        s += x
    return s / len(v)


def _div(a: float, b: float) -> float:
    """f64 division: x/0 is ±inf or NaN, as in Rust (written as null, like serde_json)."""
    try:
        return a / b
    except ZeroDivisionError:
        if a == 0.0 or math.isnan(a):
            return math.nan
        return math.copysign(math.inf, a) * math.copysign(1.0, b)


def served_from_prompt_cache(agent: dict) -> bool:
    """core's metrics::served_from_prompt_cache: the server reports at least 90% of the
    agent's first call's prompt tokens as cached."""
    calls = agent["calls"]
    server = calls[0].get("server") if calls else None
    if not server:
        return False
    cached, prompt = server.get("cached_prompt_tokens"), server.get("prompt_tokens")
    return cached is not None and prompt is not None and cached * 10 >= prompt * 9


def run_metrics(seq: dict, conc: dict, after: Optional[list] = None) -> dict:
    """core's run_metrics_with_graph: ``after`` is the agents' dependencies by index (None:
    independent agents, core's run_metrics)."""
    n = len(seq["agents"])
    if after is None:
        after = [[] for _ in seq["agents"]]
    t_conc = conc["wall_ms"]
    per_agent = []
    for s, c in zip(seq["agents"], conc["agents"]):
        per_agent.append(
            {
                "agent_id": s["agent_id"],
                "alone_ms": s["duration_ms"],
                "concurrent_ms": c["duration_ms"],
                "slowdown": _div(c["duration_ms"], s["duration_ms"]),
                "tokens_alone": agent_output_tokens(s)[0],
                "tokens_concurrent": agent_output_tokens(c)[0],
                "concurrent_decode_tok_s": _decode_rate(c),
                "alone_decode_tok_s": _decode_rate(s),
                "concurrent_ttft_ms": _mean_ttft(c),
                "concurrent_ttft_answer_ms": _mean_ttft(c, "ttft_answer_ms"),
                "reasoning_tokens_concurrent": sum(
                    c2["reasoning_tokens"]["value"] for c2 in c["calls"] if c2.get("reasoning_tokens") is not None
                ),
            }
        )
    seq_sum = 0.0
    for a in per_agent:
        seq_sum += a["alone_ms"]
    conc_sum = 0.0
    for a in per_agent:
        conc_sum += a["concurrent_ms"]
    speedup = _div(seq_sum, t_conc)
    cp = critical_path(after, [a["duration_ms"] for a in seq["agents"]])
    cp_ms = cp[0] if cp is not None else None
    est = _div(conc_sum, t_conc)
    length_mismatch = any(a["tokens_alone"] != a["tokens_concurrent"] for a in per_agent)
    token_normalized = None
    if length_mismatch:
        norm = 0.0
        for a in per_agent:
            norm += a["alone_ms"] * float(a["tokens_concurrent"]) / float(max(a["tokens_alone"], 1))
        token_normalized = figure(_div(norm, t_conc), "estimated")
    tokens_conc = sum(a["tokens_concurrent"] for a in per_agent)
    all_server_counted = all(agent_output_tokens(a)[1] for a in conc["agents"])
    throughput = _div(float(tokens_conc), t_conc / 1e3)
    slowdowns = [a["slowdown"] for a in per_agent]

    def pair(key: str) -> Optional[float]:
        if len(per_agent) < 2:
            return None
        x, y = per_agent[0][key], per_agent[1][key]
        if x is None or y is None:
            return None
        return x - y

    flags = {
        "ttft_anomaly": any(
            c["ttft_ms"] is not None and c["ttft_ms"] > TTFT_ANOMALY_MS
            for a in conc["agents"]
            for c in a["calls"]
        ),
        "low_speedup": (
            speedup <= LOW_EFFICIENCY * _div(seq_sum, cp_ms) - F64_EPSILON
            if cp_ms is not None and after is not None and any(after)
            else _div(speedup, float(n)) <= LOW_EFFICIENCY - F64_EPSILON
        ),
        "cold_load": any(c["cold_load"] for a in seq["agents"] + conc["agents"] for c in a["calls"]),
        "length_mismatch": length_mismatch,
        "prompt_cache": any(served_from_prompt_cache(a) for a in seq["agents"] + conc["agents"]),
    }
    return {
        "agents": n,
        "sequential_sum_ms": seq_sum,
        "concurrent_wall_ms": t_conc,
        "speedup": figure(speedup, "measured"),
        "efficiency": figure(_div(speedup, float(n)), "measured"),
        "estimated_speedup": figure(est, "estimated"),
        "estimated_efficiency": figure(_div(est, float(n)), "estimated"),
        "token_normalized_speedup": token_normalized,
        "system_throughput_tok_s": figure(throughput, "measured" if all_server_counted else "estimated"),
        "fairness": jain_index(slowdowns),
        "throughput_delta_tok_s": pair("concurrent_decode_tok_s"),
        "ttft_delta_ms": pair("concurrent_ttft_ms"),
        "flags": flags,
        "per_agent": per_agent,
        "critical_path_ms": cp_ms,
        "graph_ceiling": figure(_div(seq_sum, cp_ms), "measured") if cp_ms is not None else None,
        "graph_efficiency": figure(_div(cp_ms, t_conc), "measured") if cp_ms is not None else None,
    }
