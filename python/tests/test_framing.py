"""HTTP framings, as the Rust conformance cases check them: chunk extensions and close-delimited
bodies are read; a malformed chunk size or an oversized head is `framing`; a reset or an early
close mid-stream is `closed_before_done`, with messages that say what happened."""

import asyncio
import json
import socket
import struct
from time import perf_counter_ns

import httpx

from chimeraforge_py.call import Settings, Target, execute_call

LINE = json.dumps({"model": "m", "response": "Hi", "done": False}).encode() + b"\n"
DONE = json.dumps({"model": "m", "response": "", "done": True}).encode() + b"\n"
NDJSON = b"content-type: application/x-ndjson\r\n"


def chunk(data: bytes, ext: bytes = b"") -> bytes:
    return b"%x%s\r\n%s\r\n" % (len(data), ext, data)


async def _call(script: list) -> dict:
    """Answer one request with ``script``: bytes are written, floats are pauses, "reset" resets
    the connection (SO_LINGER 0), and the connection is closed after the last step."""

    async def handle(reader, writer):
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.decode().split("\r\n")[1:]:
            if line.lower().startswith("content-length:"):
                length = int(line.split(":")[1])
        await reader.readexactly(length)
        try:
            for step in script:
                if step == "reset":
                    sock = writer.get_extra_info("socket")
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    writer.transport.abort()
                    return
                if isinstance(step, float):
                    await asyncio.sleep(step)
                else:
                    writer.write(step)
                    await writer.drain()
        except ConnectionError:
            pass
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/api/generate"
    async with server, httpx.AsyncClient(trust_env=False) as client:
        t = Target("a", "framing", url, "m", "ollama-generate", b"{}")
        s = Settings(5 * 10**9, 5 * 10**9, 10 * 10**9, 1 << 20, 500.0)
        rec, _, _ = await execute_call(client, t, s, perf_counter_ns())
    return rec


def call(script: list) -> dict:
    return asyncio.run(_call(script))


CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\n" + NDJSON + b"transfer-encoding: chunked\r\n\r\n"


def test_chunk_extensions_are_ignored():
    for ext in (b";ext=1", b';name="quoted;value";flag'):
        rec = call([CHUNKED_HEAD, chunk(LINE, ext), 0.02, chunk(DONE, ext), b"0" + ext + b"\r\n\r\n"])
        assert rec["error"] is None, (ext, rec["error"])
        assert rec["text_events"] == 1


def test_close_delimited_bodies_are_read_to_eof():
    for version in (b"HTTP/1.0", b"HTTP/1.1"):
        rec = call([version + b" 200 OK\r\n" + NDJSON + b"\r\n", LINE, 0.02, DONE])
        assert rec["error"] is None, (version, rec["error"])
        assert rec["text_events"] == 1


def _assert_names(msg: str, word: str):
    assert "unknown error" not in msg.lower() and word in msg.lower(), msg


def test_malformed_chunk_size_is_framing():
    rec = call([CHUNKED_HEAD, chunk(LINE), 0.05, b"zz\r\nnot a chunk\r\n", 0.3])
    e = rec["error"]
    assert e["kind"] == "framing", e
    _assert_names(e["message"], "chunk")
    assert rec["text_events"] == 1


def test_reset_mid_stream_is_closed_before_done():
    rec = call([CHUNKED_HEAD, chunk(LINE), 0.05, "reset"])
    e = rec["error"]
    assert e["kind"] == "closed_before_done", e
    _assert_names(e["message"], "reset")


def test_early_close_mid_chunked_body_is_closed_before_done():
    rec = call([CHUNKED_HEAD, chunk(LINE), 0.05])
    e = rec["error"]
    assert e["kind"] == "closed_before_done", e
    _assert_names(e["message"], "closed")


def test_content_length_cut_short_is_closed_before_done():
    rec = call([b"HTTP/1.1 200 OK\r\n" + NDJSON + b"content-length: 1000\r\n\r\n", LINE, 0.05])
    e = rec["error"]
    assert e["kind"] == "closed_before_done", e
    _assert_names(e["message"], "closed")


def test_oversized_response_head_is_framing():
    rec = call([b"HTTP/1.1 200 OK\r\n" + NDJSON + b"x-big: " + b"a" * (1 << 20) + b"\r\n\r\n" + DONE])
    e = rec["error"]
    assert e["kind"] == "framing", e
    _assert_names(e["message"], "head")
