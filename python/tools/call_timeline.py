"""Where one Python call's time goes: a per-segment timeline, wall and thread CPU.

Runs N calls, one at a time, with chimeraforge_py.call.execute_call (exactly what the
python-* backends run) against a simulator whose ``fixed`` profile sends the first token
50 ms after the request arrived, and prints the median of each segment between t_send and
the first text event. The stack's own instants come from httpcore's ``trace`` request
extension; "first bytes read" from wrapping httpcore's AnyIOStream.read. Diagnostic only:
the wrappers add a few µs per segment.

    target/release/chimeraforge sim --profile fixed --port 18123 &
    .venv-py/bin/python python/tools/call_timeline.py --calls 60
    .venv-py/bin/python python/tools/call_timeline.py --calls 60 --uvloop
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
from time import perf_counter_ns, thread_time_ns

import httpcore._backends.anyio as httpcore_anyio

from chimeraforge_py import call as C
from chimeraforge_py.child import new_client
from chimeraforge_py.workload import request_body

# The `fixed` profile's first token, ms after the request arrived (the simulator must run it).
FIXED_TTFT_MS = 50.0

SEGMENTS = [
    ("t_send", "send_entry", "t_send -> client.send entered"),
    ("send_entry", "connection.connect_tcp.started", "-> TCP connect starts (httpx layers, pool)"),
    ("connection.connect_tcp.started", "connection.connect_tcp.complete", "-> connected (anyio connect_tcp)"),
    ("connection.connect_tcp.complete", "http11.send_request_headers.complete", "-> request head written"),
    ("http11.send_request_headers.complete", "http11.send_request_body.complete", "-> request body written"),
    ("http11.send_request_body.complete", "first_read", "-> first response bytes read (less 50 ms TTFT)"),
    ("first_read", "http11.receive_response_headers.complete", "-> response head parsed (h11)"),
    ("http11.receive_response_headers.complete", "send_return", "-> client.send returns"),
    ("send_return", "first_text", "-> first text event stamped"),
]

marks: dict = {}


def mark(name: str) -> None:
    if name not in marks:
        marks[name] = (perf_counter_ns(), thread_time_ns())


async def trace(name: str, info) -> None:
    mark(name)


def instrument() -> None:
    read = httpcore_anyio.AnyIOStream.read

    async def timed_read(self, max_bytes, timeout=None):
        data = await read(self, max_bytes, timeout)
        if "http11.send_request_body.complete" in marks:
            mark("first_read")
        return data

    httpcore_anyio.AnyIOStream.read = timed_read
    on_event = C._Measuring.on_event

    def timed_on_event(self, ev, at):
        on_event(self, ev, at)
        if self.t_first is not None and "first_text" not in marks:
            marks["first_text"] = (self.t_first, thread_time_ns())
            marks["t_send_at"] = self.t_send

    C._Measuring.on_event = timed_on_event


async def main(args) -> None:
    url = f"http://127.0.0.1:{args.port}/api/chat"
    settings = C.Settings(60 * 10**9, 30 * 10**9, 600 * 10**9, 1 << 20, 1000.0)
    async with new_client(5.0) as client:
        build, send = client.build_request, client.send

        def traced_build(*a, **k):
            req = build(*a, **k)
            req.extensions["trace"] = trace
            return req

        async def traced_send(*a, **k):
            mark("send_entry")
            resp = await send(*a, **k)
            mark("send_return")
            return resp

        client.build_request, client.send = traced_build, traced_send
        rows, biases, cpu = [], [], []
        for i in range(args.calls + 2):
            opts = {"num_gpu": 80, "num_ctx": 512, "temperature": 1.0, "num_predict": args.tokens}
            body = request_body("ollama", "gemma3:latest", "", f"[timeline] Say something. {i}", opts)
            target = C.Target("a", f"call{i}", url, "gemma3:latest", "ollama", body)
            marks.clear()
            cpu0 = thread_time_ns()
            marks["t_send"] = (0, cpu0)
            rec, _, _ = await C.execute_call(client, target, settings, perf_counter_ns())
            cpu1 = thread_time_ns()
            if rec["error"] is not None:
                hint = ""
                if rec["error"]["kind"] == "connect":
                    hint = f"\n  hint: start the simulator first: target/release/chimeraforge sim --profile fixed --port {args.port}"
                raise SystemExit(f"call to {url} (model gemma3:latest) failed: {rec['error']}{hint}")
            if i < 2:  # the first calls import and warm up
                continue
            marks["t_send"] = (marks["t_send_at"], marks["t_send"][1])
            rows.append([(marks[b][0] - marks[a][0], marks[b][1] - marks[a][1]) for a, b, _ in SEGMENTS])
            biases.append(rec["ttft_ms"] - FIXED_TTFT_MS)
            cpu.append((cpu1 - cpu0) / 1e6)
    med = statistics.median
    loop = "uvloop" if args.uvloop else "asyncio"
    print(f"{loop}: {len(rows)} calls of {args.tokens} tokens; TTFT bias p50 {med(biases):.2f} ms; "
          f"thread CPU per call p50 {med(cpu):.2f} ms")
    print(f"{'segment':48} {'wall ms':>8} {'CPU ms':>8}")
    for j, (_, end, label) in enumerate(SEGMENTS):
        # The server's scheduled wait sits in the segment that ends with the first read.
        wall = med(r[j][0] for r in rows) / 1e6 - (FIXED_TTFT_MS if end == "first_read" else 0.0)
        # no CPU for the first and last rows: their CPU marks are not at the same instants
        thread = "" if j in (0, len(SEGMENTS) - 1) else f"{med(r[j][1] for r in rows) / 1e6:8.2f}"
        print(f"{label:48} {wall:8.2f} {thread:>8}")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=18123,
                   help="port of a simulator running `--profile fixed` (its 50 ms TTFT is subtracted)")
    p.add_argument("--calls", type=int, default=60)
    p.add_argument("--tokens", type=int, default=8)
    p.add_argument("--uvloop", action="store_true")
    args = p.parse_args()
    instrument()
    if args.uvloop:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    asyncio.run(main(args))
