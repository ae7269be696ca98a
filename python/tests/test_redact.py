"""API keys echoed by a server never reach the Python child's record (issue 14, point 3)."""

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import job
from chimeraforge_py.redact import REDACTED, redact_json, redact_text

KEY = "sk-" + "0123456789abcdef" * 2


def test_every_occurrence_and_a_cut_piece_at_either_end_is_redacted():
    assert redact_text(f"Bearer {KEY} and {KEY}.", [KEY]) == f"Bearer {REDACTED} and {REDACTED}."
    assert redact_text("preview ends Bearer " + KEY[:10], [KEY]) == f"preview ends Bearer {REDACTED}"
    assert redact_text(KEY[-9:] + " tail", [KEY]) == f"{REDACTED} tail"
    # Pieces shorter than MIN_PARTIAL stay.
    assert redact_text("ask sk-", [KEY]) == "ask sk-"
    assert redact_text(f"x {KEY}", [None, ""]) == f"x {KEY}"
    tree = {"error": {"message": f"HTTP 401: {KEY}"}, "list": [KEY, 1.5, None], KEY: True}
    out = redact_json(tree, [KEY])
    assert out == {"error": {"message": f"HTTP 401: {REDACTED}"}, "list": [REDACTED, 1.5, None], REDACTED: True}
    assert KEY not in json.dumps(out)


class Echo(BaseHTTPRequestHandler):
    """Repeats the Authorization header: in a 401 body for endpoint /refuse, else in a stream."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", "0")))
        auth = self.headers.get("authorization", "(none)")
        if self.path.startswith("/refuse"):
            status, ctype = 401, "application/json"
            body = json.dumps({"error": f"invalid api key: you sent Authorization: {auth}"})
        else:
            status, ctype = 200, "application/x-ndjson"
            lines = [{"message": {"role": "assistant", "content": t}, "done": False}
                     for t in ["you sent: ", auth[:12], auth[12:], " " * 120 + auth]]
            lines.append({"message": {"role": "assistant", "content": ""}, "done": True,
                          "done_reason": "stop", "eval_count": 4, "eval_duration": 1000000})
            body = "".join(json.dumps(l) + "\n" for l in lines)
        data = body.encode()
        self.send_response(status)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(data)))
        self.send_header("connection", "close")
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def echo_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.mark.parametrize("backend", ["python-asyncio", "python-uvloop"])
@pytest.mark.parametrize("refuse", [False, True])
def test_a_key_echoed_by_the_server_is_not_in_the_record(echo_url, backend, refuse):
    url = echo_url + ("/refuse" if refuse else "")
    j = job([url], backend=backend, num_predict=4)
    for a in j["plan"]["agents"]:
        a["endpoint"]["api_key_env"] = "CF_PY_TEST_KEY"
    p = subprocess.run(
        [sys.executable, "-m", "chimeraforge_py", "child", "--backend", backend],
        input=json.dumps(j).encode(), capture_output=True, timeout=120,
        env={**os.environ, "CF_PY_TEST_KEY": KEY},
    )
    out, err = p.stdout.decode(), p.stderr.decode()
    assert p.returncode == 0, err
    rec = json.loads(out)
    if refuse:
        assert rec["status"] == "failed" and rec["error"]["status"] == 401, rec["error"]
        assert f"Bearer {REDACTED}" in rec["error"]["message"], rec["error"]
    else:
        assert rec["status"] == "ok", rec.get("error")
        assert f"Bearer {REDACTED}" in rec["warmup"][0]["output_preview"], rec["warmup"][0]
    for i in range(len(KEY) - 9):
        assert KEY[i:i + 10] not in out + err, (KEY[i:i + 10], out)
