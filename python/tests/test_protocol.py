"""The call and the run protocol against a tiny in-test HTTP server (same event loop):
typed errors and timeouts, warm-up dedup, alternation, the barrier."""

import asyncio
import json

import httpx

from chimeraforge_py.call import Settings, Target, execute_call
from chimeraforge_py.protocol import execute_run
from time import perf_counter_ns

from conftest import job

DONE = b'{"message":{"content":""},"done":true,"done_reason":"length","eval_count":2,"eval_duration":20000000,"load_duration":1000000}\n'


def tok(t):
    return json.dumps({"message": {"content": t}, "done": False}).encode() + b"\n"


class Server:
    """HTTP/1.1 with chunked bodies. ``behave(path, body)`` returns (status, content type, script);
    the script is a list of bytes (a chunk) or floats (sleep seconds) or "close"; floats first
    are a pause before the headers, unless "headers" comes first."""

    def __init__(self, behave):
        self.behave = behave
        self.requests = []

    async def __aenter__(self):
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc):
        self.server.close()

    async def handle(self, reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode().split("\r\n")
                path = lines[0].split(" ")[1]
                length = 0
                for line in lines[1:]:
                    if line.lower().startswith("content-length:"):
                        length = int(line.split(":")[1])
                body = await reader.readexactly(length)
                self.requests.append((path, json.loads(body)))
                status, ctype, script = self.behave(path, json.loads(body))
                # Leading pauses delay the head; later ones pause the body.
                while script and isinstance(script[0], float):
                    await asyncio.sleep(script[0])
                    script = script[1:]
                writer.write(f"HTTP/1.1 {status} X\r\ncontent-type: {ctype}\r\ntransfer-encoding: chunked\r\n\r\n".encode())
                await writer.drain()
                for step in script:
                    if step == "headers":  # lets a script start with a pause after the headers
                        continue
                    if step == "close":
                        writer.close()
                        return
                    if isinstance(step, float):
                        await asyncio.sleep(step)
                    else:
                        writer.write(b"%x\r\n%s\r\n" % (len(step), step))
                        await writer.drain()
                writer.write(b"0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def settings(first_byte=2000, idle=2000, total=5000):
    return Settings(first_byte * 10**6, idle * 10**6, total * 10**6, 1 << 20, 500.0)


async def one_call(behave, s=None, api="ollama"):
    async with Server(behave) as srv:
        async with httpx.AsyncClient(trust_env=False) as client:
            t = Target("a", "analysis", srv.url + "/api/chat", "m", api, b"{}")
            rec, text, _ = await execute_call(client, t, s or settings(), perf_counter_ns())
            return rec, text


def run(coro):
    return asyncio.run(coro)


def test_a_good_call_is_measured():
    rec, text = run(one_call(lambda p, b: (200, "application/x-ndjson", [tok("Hé"), 0.02, tok("llo"), DONE])))
    assert rec["error"] is None and text == "Héllo"
    assert rec["output_tokens"] == {"value": 2, "basis": "measured"}
    assert rec["text_events"] == 2 and len(rec["text_offsets_ms"]) == 2
    assert rec["decode_ms"] >= 15 and rec["ttft_ms"] <= rec["e2e_ms"]
    assert rec["server"]["done_reason"] == "length" and rec["server"]["load_ms"] == 1.0
    assert abs(rec["tpot_ms"] - rec["decode_ms"]) < 1e-9


def think(t):
    return json.dumps({"message": {"content": "", "thinking": t}, "done": False}).encode() + b"\n"


def test_a_reasoning_call_has_two_ttfts_and_passes_on_only_its_answer():
    done = b'{"message":{"content":""},"done":true,"eval_count":4,"eval_duration":30000000}\n'
    script = [think("Let"), 0.02, think(" me"), 0.02, tok("An"), tok("swer"), done]
    rec, text = run(one_call(lambda p, b: (200, "application/x-ndjson", script)))
    assert rec["error"] is None
    assert text == "Answer" and rec["output_preview"] == "Answer"
    assert rec["ttft_answer_ms"] - rec["ttft_ms"] >= 30
    assert rec["text_events"] == 4 and rec["reasoning_events"] == 2
    # Ollama counts every token in eval_count and none as thoughts: the split is counted.
    assert rec["output_tokens"] == {"value": 4, "basis": "measured"}
    assert rec["reasoning_tokens"] == {"value": 2, "basis": "estimated"}
    assert rec["answer_tokens"] == {"value": 2, "basis": "estimated"}
    # decode spans every generated token, thoughts included
    assert rec["decode_ms"] >= 35 and abs(rec["tpot_ms"] - rec["decode_ms"] / 3) < 1e-9


def test_a_call_without_reasoning_has_one_ttft():
    rec, _ = run(one_call(lambda p, b: (200, "application/x-ndjson", [tok("a"), tok("b"), DONE])))
    assert rec["ttft_answer_ms"] == rec["ttft_ms"]
    assert rec["reasoning_tokens"] is None and rec["reasoning_events"] == 0
    assert rec["answer_tokens"] == rec["output_tokens"]


def test_http_status_error():
    rec, _ = run(one_call(lambda p, b: (404, "application/json", [b'{"error":"model \\"m\\" not found"}'])))
    e = rec["error"]
    assert e["kind"] == "http_status" and e["status"] == 404 and e["message"] == 'HTTP 404: model "m" not found'


def test_wrong_content_type():
    rec, _ = run(one_call(lambda p, b: (200, "text/html", [b"<html>"])))
    assert rec["error"]["kind"] == "wrong_content_type" and rec["error"]["status"] == 200


def test_closed_before_done_and_server_error_and_malformed():
    rec, _ = run(one_call(lambda p, b: (200, "application/x-ndjson", [tok("a")])))
    assert rec["error"]["kind"] == "closed_before_done"
    rec, _ = run(one_call(lambda p, b: (200, "application/x-ndjson", [tok("a"), b'{"error":"oom"}\n'])))
    assert rec["error"]["kind"] == "server_error" and "oom" in rec["error"]["message"]
    rec, _ = run(one_call(lambda p, b: (200, "application/x-ndjson", [b"{nope\n"])))
    assert rec["error"]["kind"] == "malformed_stream"


def test_timeouts():
    rec, _ = run(one_call(lambda p, b: (200, "application/x-ndjson", [0.5, tok("a"), DONE]), settings(first_byte=100)))
    assert rec["error"]["kind"] == "first_byte_timeout" and rec["error"]["elapsed_ms"] < 450
    rec, _ = run(one_call(lambda p, b: (200, "application/x-ndjson", [tok("a"), 0.5, DONE]), settings(idle=100)))
    assert rec["error"]["kind"] == "idle_timeout" and rec["error"]["message"] == "stream stalled: idle timeout"
    rec, _ = run(one_call(
        lambda p, b: (200, "application/x-ndjson", [tok("a"), 0.08, tok("b"), 0.08, tok("c"), 0.08, DONE]),
        settings(idle=1000, total=150)))
    assert rec["error"]["kind"] == "total_timeout"


def test_body_timeouts_fire_on_time_and_only_when_due():
    # headers, then no byte: the first-byte deadline, measured from t_send
    rec, _ = run(one_call(lambda p, b: (200, "application/x-ndjson", ["headers", 0.6, tok("a"), DONE]), settings(first_byte=150)))
    e = rec["error"]
    assert e["kind"] == "first_byte_timeout" and e["message"] == "stream stalled: first byte timeout"
    assert 150 <= e["elapsed_ms"] < 450 and e["bytes_received"] == 0
    # idle shorter than first-byte: the deadline moves earlier after the first chunk
    rec, _ = run(one_call(lambda p, b: (200, "application/x-ndjson", [tok("a"), 0.6, DONE]), settings(first_byte=5000, idle=120)))
    e = rec["error"]
    assert e["kind"] == "idle_timeout" and 120 <= e["elapsed_ms"] < 450, e
    # chunks 60 ms apart for 6 x idle: every read is within idle, so nothing fires
    script = [tok("a")]
    for t in "bcdefghijklm":
        script += [0.06, tok(t)]
    rec, text = run(one_call(lambda p, b: (200, "application/x-ndjson", script + [DONE]), settings(idle=100)))
    assert rec["error"] is None and text == "abcdefghijklm" and rec["e2e_ms"] > 600
    # a stall after steady chunks: idle counts from the last chunk, not from the first
    rec, _ = run(one_call(lambda p, b: (200, "application/x-ndjson", script + [0.6, DONE]), settings(idle=100)))
    e = rec["error"]
    assert e["kind"] == "idle_timeout", e
    assert e["elapsed_ms"] - rec["text_offsets_ms"][-1] >= 100 and e["elapsed_ms"] > 700


def test_connect_refused():
    async def go():
        async with httpx.AsyncClient(trust_env=False) as client:
            t = Target("a", "analysis", "http://127.0.0.1:9/api/chat", "m", "ollama", b"{}")
            return await execute_call(client, t, settings(), perf_counter_ns())
    rec, _, _ = run(go())
    assert rec["error"]["kind"] == "connect"


def test_run_protocol_order_warmup_and_barrier():
    def behave(path, body):
        return 200, "application/x-ndjson", [tok("x"), 0.05, tok("y"), DONE]

    async def go(run_index, same_options):
        async with Server(behave) as srv:
            j = job([srv.url], run_index=run_index)
            if not same_options:
                j["plan"]["agents"][1]["options"]["num_ctx"] = 1024
            async with httpx.AsyncClient(trust_env=False) as client:
                return await execute_run(client, j["plan"], [None, None]), srv.requests

    out, reqs = run(go(0, True))
    assert out["status"] == {"status": "ok"}
    # one warm-up call per agent (each opens its agent's kept-alive connection), the first
    # alone (it loads the model), the other after it
    assert [c["agent_id"] for c in out["warmup"]] == ["collector", "insight"]
    assert reqs[0][1]["options"]["num_predict"] == 4 and reqs[1][1]["options"]["num_predict"] == 4
    seq, conc = out["sequential"], out["concurrent"]
    assert [a["agent_id"] for a in seq["agents"]] == ["collector", "insight"]
    # sequential, in order 0, 1: agent 1 starts after agent 0 ended
    assert seq["agents"][1]["start_ms"] >= seq["agents"][0]["duration_ms"]
    # concurrent: both released together, overlapping: every agent starts before any agent's
    # first call ends (each call lasts at least the server's 50 ms pause). Not a fixed bound
    # in ms: with both cores busy, a release took over 5 ms.
    first_end = min(a["calls"][0]["send_offset_ms"] + a["calls"][0]["e2e_ms"] for a in conc["agents"])
    assert max(a["start_ms"] for a in conc["agents"]) < first_end, conc["agents"]
    assert conc["wall_ms"] < seq["wall_ms"] * 0.75
    assert out["metrics"]["speedup"]["value"] > 1.5
    # the second call quotes the first call's output
    assert "xy" in reqs[3][1]["messages"][-1]["content"]

    out, reqs = run(go(1, False))
    assert len(out["warmup"]) == 2
    seq = out["sequential"]
    # odd run: agents reversed in the sequential phase, still listed in agent order
    assert [a["agent_id"] for a in seq["agents"]] == ["collector", "insight"]
    assert seq["agents"][0]["start_ms"] >= seq["agents"][1]["duration_ms"]
    # odd run: concurrent phase first
    assert reqs[2][0] == "/api/chat" and len(reqs) == 2 + 8


def test_failed_call_fails_the_run_with_its_phase():
    async def go():
        async with Server(lambda p, b: (500, "application/json", [b'{"error":"boom"}'])) as srv:
            j = job([srv.url], warmup_tokens=0)
            async with httpx.AsyncClient(trust_env=False) as client:
                return await execute_run(client, j["plan"], [None, None])

    out = run(go())
    assert out["status"]["status"] == "failed" and out["status"]["phase"] == "sequential"
    assert out["status"]["error"]["kind"] == "http_status" and out["metrics"] is None
    assert out["concurrent"] is None


def test_every_agent_and_phase_sends_its_own_tag_as_core_does():
    from chimeraforge_py.protocol import agent_tag

    plan = {"run_index": 2, "run_tag": "run 3 be m chimera-homo", "prompt_nonce": "0123456789abcdef"}
    # the same strings as core's protocol::tag_tests
    assert agent_tag(plan, "concurrent", {"id": "collector-2"}) == (
        "0123456789abcdef concurrent collector-2 run 3 be m chimera-homo"
    )
    assert agent_tag({"run_index": 2}, "warmup", {"id": "insight-1"}) == "warmup insight-1 run 2"

    def behave(path, body):
        return 200, "application/x-ndjson", [tok("x"), DONE]

    async def go():
        async with Server(behave) as srv:
            j = job([srv.url], run_index=0)
            j["plan"]["run_tag"] = "run 1"
            j["plan"]["prompt_nonce"] = "feedfacefeedface"
            async with httpx.AsyncClient(trust_env=False) as client:
                await execute_run(client, j["plan"], [None, None])
            return srv.requests

    reqs = run(go())
    systems = [body["messages"][0]["content"] for _, body in reqs[2:]]
    assert systems[0].startswith("[feedfacefeedface sequential collector run 1] You are DataCollector")
    measured = [s.split("]")[0] for s in systems]
    assert len(set(measured)) == 4  # 2 agents x 2 phases, each its own tag
    # each agent's sequential and concurrent tags have one length (phases stay comparable)
    by_agent = {}
    for m in measured:
        _, phase, agent = m.split()[:3]
        by_agent.setdefault(agent, {}).setdefault(phase, set()).add(len(m))
    assert len(by_agent) == 2, by_agent
    for agent, phases in by_agent.items():
        assert set(phases) == {"sequential", "concurrent"}, by_agent
        assert phases["sequential"] == phases["concurrent"] and len(phases["sequential"]) == 1, by_agent
