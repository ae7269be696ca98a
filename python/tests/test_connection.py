"""The connection policy on the Python client, as the Rust conformance cases check it
(crates/conformance/src/connections.rs): one kept connection per agent under keep-alive,
one per call under fresh, whatever the server does; a kept connection the server closed is
replaced once inside the call, never after part of a response."""

from __future__ import annotations

import asyncio
import json
from time import perf_counter_ns

from chimeraforge_py.call import Target, execute_call
from chimeraforge_py.connection import FRESH, KEEP_ALIVE, RunClients
from chimeraforge_py.protocol import execute_run

from conftest import job
from test_protocol import DONE, settings, tok


class CountingServer:
    """HTTP/1.1 on loopback that counts its connections and ignores ``Connection: close``.
    ``close_after``: close a connection after that many responses, unannounced; ``idle_s``:
    close one idle that long; ``reply(n)`` gives the script of the n-th request overall
    (a list of lines; ``"reset"`` resets the connection there)."""

    def __init__(self, reply=None, close_after=None, idle_s=None):
        self.reply = reply or (lambda n: [tok("o"), tok("k"), DONE])
        self.close_after = close_after
        self.idle_s = idle_s
        self.connections = 0
        self.requests = []  # (connection index, headers, body)

    async def __aenter__(self):
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc):
        self.server.close()

    async def handle(self, reader, writer):
        conn = self.connections
        self.connections += 1
        answered = 0
        try:
            while True:
                wait = self.idle_s if (self.idle_s is not None and answered > 0) else None
                try:
                    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), wait)
                except asyncio.TimeoutError:
                    return
                lines = head.decode().split("\r\n")
                headers = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:] if ":" in l)}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                n = len(self.requests)
                self.requests.append((conn, headers, body))
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/x-ndjson\r\ntransfer-encoding: chunked\r\n\r\n")
                for step in self.reply(n):
                    if step == "reset":
                        writer.transport.abort()
                        return
                    writer.write(b"%x\r\n%s\r\n" % (len(step), step))
                    await writer.drain()
                    await asyncio.sleep(0.005)
                writer.write(b"0\r\n\r\n")
                await writer.drain()
                answered += 1
                if self.close_after is not None and answered >= self.close_after:
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def run(coro):
    return asyncio.run(coro)


def test_keep_alive_is_one_connection_per_agent_and_fresh_one_per_call():
    async def go(policy):
        async with CountingServer() as srv:
            j = job([srv.url], run_index=0)
            async with RunClients(5.0, policy) as clients:
                out = await execute_run(clients, j["plan"], [None, None])
            return out, srv

    out, srv = run(go(KEEP_ALIVE))
    assert out["status"] == {"status": "ok"}
    assert srv.connections == 2, "one connection per agent, warm-up included"
    for agent in ("collector", "insight"):
        warm = [c for c in out["warmup"] if c["agent_id"] == agent]
        measured = [c for p in ("sequential", "concurrent") for a in out[p]["agents"] if a["agent_id"] == agent for c in a["calls"]]
        assert [c["connections_opened"] for c in warm + measured] == [1, 0, 0, 0, 0], agent
        assert all(c["reconnects"] == 0 for c in warm + measured)
    by_conn = {}
    for conn, headers, body in srv.requests:
        assert headers.get("connection") != "close"
        agent = json.loads(body)["messages"][0]["content"].split("]")[0].split()[1]
        by_conn.setdefault(conn, set()).add(agent)
    assert all(len(agents) == 1 for agents in by_conn.values()), by_conn

    out, srv = run(go(FRESH))
    assert out["status"] == {"status": "ok"}
    calls = out["warmup"] + [c for p in ("sequential", "concurrent") for a in out[p]["agents"] for c in a["calls"]]
    assert [(c["connections_opened"], c["reconnects"]) for c in calls] == [(1, 0)] * len(calls)
    assert srv.connections == len(calls) == len(srv.requests)
    assert all(headers.get("connection") == "close" for _, headers, _ in srv.requests)


def target(url):
    body = json.dumps({"model": "m", "messages": [], "stream": True}).encode()
    return Target(agent_id="a", call="c", url=url + "/api/chat", model="m", api="ollama", body=body, api_key=None)


async def calls(srv, n, pause_s=0.0):
    async with RunClients(5.0, KEEP_ALIVE) as clients:
        client = clients.for_agent()
        out = []
        for i in range(n):
            if i == 1 and pause_s:
                await asyncio.sleep(pause_s)
            rec, _, _ = await execute_call(client, target(srv.url), settings(), perf_counter_ns())
            out.append(rec)
        return out


def counts(records):
    return [(r["connections_opened"], r["reconnects"]) for r in records]


def test_idle_close_and_close_after_n_requests_reconnect_inside_the_call():
    async def idle():
        async with CountingServer(idle_s=0.1) as srv:
            return await calls(srv, 3, pause_s=0.4), srv

    recs, srv = run(idle())
    assert all(r["error"] is None and r["output_preview"] == "ok" for r in recs), recs
    assert counts(recs) == [(1, 0), (1, 1), (0, 0)]
    assert srv.connections == 2

    async def after_two():
        async with CountingServer(close_after=2) as srv:
            return await calls(srv, 5), srv

    recs, srv = run(after_two())
    assert all(r["error"] is None for r in recs), recs
    assert counts(recs) == [(1, 0), (0, 0), (1, 1), (0, 0), (1, 1)]
    assert srv.connections == 3 and len(srv.requests) == 5


def test_no_retry_after_part_of_a_response():
    async def go():
        reply = lambda n: [tok("o"), "reset"] if n == 1 else [tok("o"), tok("k"), DONE]
        async with CountingServer(reply=reply) as srv:
            return await calls(srv, 2), srv

    recs, srv = run(go())
    assert recs[0]["error"] is None
    assert recs[1]["error"] is not None, "retried after response bytes arrived"
    assert recs[1]["error"]["kind"] in ("closed_before_done", "body")
    assert counts(recs) == [(1, 0), (0, 0)]
    assert len(srv.requests) == 2
