"""Bounded calls (issue 14), as in core::call: a flood of tokens or bytes ends as
runaway_stream with a small record, the kept text is a bounded prefix, a total timeout says
whether tokens were still arriving, and an unasked-for content-encoding is named."""

import asyncio
import json
from time import perf_counter_ns

import httpx

from chimeraforge_py.call import KEPT_OFFSETS, KEPT_TEXT_BYTES, Settings, Target, _Measuring, execute_call
from chimeraforge_py.codecs import Text
from chimeraforge_py.metrics import percentiles


def line(text: str, width: int) -> bytes:
    """An /api/generate NDJSON line of exactly ``width`` bytes."""
    head, tail = '{"model":"m","response":"', '","done":false}\n'
    return (head + text + "x" * (width - len(head) - len(text) - len(tail)) + tail).encode()


class Flooder:
    """One HTTP/1.1 reply per connection: ``head_lines`` then ``first`` chunks, then ``flood``
    again and again ``gap`` s apart until the client goes away (or ``limit`` s), or after
    ``first`` a silence of ``limit`` s (watching for the client to hang up) and the body's end
    when ``flood`` is None."""

    def __init__(self, first=(), flood=None, gap=0.0, limit=30.0, headers=()):
        self.first, self.flood, self.gap, self.limit, self.headers = list(first), flood, gap, limit, list(headers)
        self.requests = []
        self.closed = asyncio.Event()

    async def __aenter__(self):
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/api/generate"
        return self

    async def __aexit__(self, *exc):
        self.server.close()

    async def handle(self, reader, writer):
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            self.requests.append(head.decode().lower())
            extra = "".join(f"{k}: {v}\r\n" for k, v in self.headers)
            writer.write(
                f"HTTP/1.1 200 OK\r\ncontent-type: application/x-ndjson\r\n{extra}transfer-encoding: chunked\r\n\r\n".encode()
            )
            for c in self.first:
                writer.write(b"%x\r\n%s\r\n" % (len(c), c))
            await writer.drain()
            end = asyncio.get_running_loop().time() + self.limit
            if self.flood is None:  # silence, until the client hangs up or the limit
                try:
                    await asyncio.wait_for(reader.read(), self.limit)
                except TimeoutError:
                    pass
                writer.write(b"0\r\n\r\n")  # then the body ends
                await writer.drain()
            while self.flood is not None and asyncio.get_running_loop().time() < end:
                writer.write(b"%x\r\n%s\r\n" % (len(self.flood), self.flood))
                await writer.drain()
                await asyncio.sleep(self.gap)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.closed.set()
            writer.close()


def settings(total_ms=30000, idle_ms=5000, **kw):
    return Settings(5000 * 10**6, idle_ms * 10**6, total_ms * 10**6, 1 << 20, 500.0, **kw)


async def call(srv: Flooder, s: Settings, num_predict):
    async with httpx.AsyncClient(trust_env=False) as client:
        t = Target("a", "c", srv.url, "m", "ollama-generate", b"{}", num_predict=num_predict)
        rec, text, _ = await execute_call(client, t, s, perf_counter_ns())
    # the server saw the client hang up (the flood was cut, not waited out)
    await asyncio.wait_for(srv.closed.wait(), 5)
    return rec, text


def test_flood_of_tokens_is_a_runaway_stream():
    async def go():
        async with Flooder([line("first", 80)], line("tok", 4096)) as srv:
            return await call(srv, settings(), 8)

    rec, text = asyncio.run(go())
    e = rec["error"]
    assert e["kind"] == "runaway_stream", e
    assert "more than 32 text events (runaway_factor 4 x num_predict 8)" in e["message"], e
    assert e["elapsed_ms"] < 10_000
    assert rec["text_events"] == 33 and len(rec["text_offsets_ms"]) == 32
    assert rec["gap_ms"] is not None and rec["output_truncated"] is False
    assert text.startswith("first")
    assert len(json.dumps(rec)) < 16 * 1024


def test_flood_of_bytes_is_a_runaway_stream_with_a_bounded_text():
    cap = 2 << 20

    async def go():
        async with Flooder([], line("tok", 16 * 1024)) as srv:
            return await call(srv, settings(max_response_bytes=cap), None)

    rec, text = asyncio.run(go())
    e = rec["error"]
    assert e["kind"] == "runaway_stream", e
    assert "max_response_bytes (2097152 bytes)" in e["message"], e
    assert cap < e["bytes_received"] <= cap + (1 << 20)
    assert rec["output_truncated"] is True and len(text.encode()) == KEPT_TEXT_BYTES
    assert len(rec["output_preview"]) == 160 and rec["text_events"] > 100
    assert len(json.dumps(rec)) < 64 * 1024


def test_total_timeout_says_whether_tokens_were_arriving():
    async def go(srv):
        async with srv:
            return await call(srv, settings(total_ms=1500), 1000)

    rec, _ = asyncio.run(go(Flooder([], line("tok", 80), gap=0.02, limit=10)))
    e = rec["error"]
    assert e["kind"] == "total_timeout", e
    assert e["message"].startswith("the total time of 1500 ms ran out while tokens were still arriving"), e
    rec, _ = asyncio.run(go(Flooder([line("tok", 80)], None, limit=10)))
    e = rec["error"]
    assert e["kind"] == "total_timeout" and e["message"] == "stream stalled: total timeout", e


def test_unasked_content_encoding_is_named():
    gzip = bytes([0x1F, 0x8B, 0x08, 0, 0, 0, 0, 0, 0, 0xFF, 0xAB, 0x56, 0x2A, 0x4A])

    async def go():
        async with Flooder([gzip], None, limit=0.0, headers=[("content-encoding", "gzip")]) as srv:
            rec, _ = await call(srv, settings(), 8)
            return rec, srv.requests

    rec, requests = asyncio.run(go())
    e = rec["error"]
    assert e["kind"] == "wrong_content_type", e
    assert 'content-encoding "gzip"' in e["message"], e
    assert "accept-encoding: identity" in requests[0]


def test_long_stream_keeps_a_prefix_of_offsets_and_exact_gaps():
    t = Target("a", "c", "http://x/api/chat", "m", "ollama", b"")
    m = _Measuring(t, settings())
    n = KEPT_OFFSETS + 5000
    at, gaps = m.t_send, []
    for i in range(n):
        if i:
            g = 1 if i < KEPT_OFFSETS else 9
            at += g * 1_000_000
            gaps.append(float(g))
        m.on_event(Text("x"), at)
    rec, _, _ = m.finish(at, None)
    assert rec["text_events"] == n and len(rec["text_offsets_ms"]) == KEPT_OFFSETS
    want = percentiles(gaps)
    for k in ("p50", "p90", "p99", "max"):
        assert abs(rec["gap_ms"][k] - want[k]) < 1e-6, (k, rec["gap_ms"], want)


def test_kept_text_is_cut_at_a_character_boundary():
    t = Target("a", "c", "http://x/api/chat", "m", "ollama", b"")
    m = _Measuring(t, settings())
    m.on_event(Text("a"), m.t_send)
    chunk = "é" * 1000
    while m.text_events < 200:
        m.on_event(Text(chunk), m.t_send)
    rec, text, _ = m.finish(m.t_send, None)
    assert rec["output_truncated"] is True and rec["text_events"] == 200
    assert KEPT_TEXT_BYTES - 2 < len(text.encode()) <= KEPT_TEXT_BYTES and text.startswith("aé")
