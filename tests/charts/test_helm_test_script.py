"""The `helm test` pod's script (helm/chatroom/files/helm-test/roundtrip.py) passes when the
posted message comes back on the stream, and fails when it does not, or comes back wrong.

It runs here against a small stand-in for ingest and stream on loopback that speaks the
public contract (201 with the stored message; text/event-stream with retry:, comments and
`event: message` blocks), since in the cluster it talks to the real services.
"""

import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from k8s_manifests import HELM_DIR

SCRIPT = HELM_DIR / "chatroom" / "files" / "helm-test" / "roundtrip.py"


class FakeChat:
    """ingest + stream on one port. `mode`: ok | lost | wrong-id | busy-then-ok."""

    def __init__(self, mode):
        self.mode = mode
        self.messages = {}  # room -> list of (id, message)
        self.cond = threading.Condition()
        self.posts = 0
        chat = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                room = self.path.split("/")[3]
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                chat.posts += 1
                if chat.mode == "busy-then-ok" and chat.posts == 1:
                    self.reply(503, {"error": {"code": "unavailable", "message": "Kafka is away"}})
                    return
                with chat.cond:
                    offset = sum(len(v) for v in chat.messages.values())
                    message = {"id": str(offset), "room": room, "ts": 1, **body}
                    if chat.mode != "lost":
                        chat.messages.setdefault(room, []).append(message)
                    chat.cond.notify_all()
                self.reply(201, message)

            def reply(self, status, payload):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                room = self.path.split("/")[3].split("?")[0]
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(b"retry: 2000\n\n: keep-alive\n\n")
                self.wfile.write(b'event: presence\ndata: {"users": ["helm-test"]}\n\n')
                self.wfile.flush()
                sent = 0
                while True:
                    with chat.cond:
                        chat.cond.wait_for(lambda sent=sent: len(chat.messages.get(room, [])) > sent, timeout=0.5)
                        pending = chat.messages.get(room, [])[sent:]
                    for message in pending:
                        event_id = str(int(message["id"]) + 1) if chat.mode == "wrong-id" else message["id"]
                        block = f"event: message\nid: {event_id}\ndata: {json.dumps(message)}\n\n"
                        try:
                            self.wfile.write(block.encode())
                            self.wfile.flush()
                        except OSError:
                            return
                        sent += 1
                    try:
                        self.wfile.write(b": ping\n\n")
                        self.wfile.flush()
                    except OSError:
                        return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def run_script(mode, timeout_s=5):
    chat = FakeChat(mode)
    try:
        env = {"INGEST_URL": chat.url, "STREAM_URL": chat.url, "TIMEOUT_S": str(timeout_s), "PATH": "/usr/bin:/bin"}
        return subprocess.run([sys.executable, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=30)
    finally:
        chat.close()


@pytest.mark.parametrize("mode", ["ok", "busy-then-ok"])
def test_passes_when_the_message_comes_back(mode):
    result = run_script(mode)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASS" in result.stdout


@pytest.mark.parametrize(("mode", "reason"), [("lost", "did not come back"), ("wrong-id", "expected")])
def test_fails_when_the_message_is_lost_or_wrong(mode, reason):
    result = run_script(mode, timeout_s=2)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAIL" in result.stdout and reason in result.stdout


def test_fails_when_nothing_answers():
    env = {"INGEST_URL": "http://127.0.0.1:9", "STREAM_URL": "http://127.0.0.1:9", "TIMEOUT_S": "2"}
    result = subprocess.run([sys.executable, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 1 and "cannot open the stream" in result.stdout
