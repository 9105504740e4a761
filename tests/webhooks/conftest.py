"""Webhooks: deliveries from real `cairn server` processes to a receiver on loopback."""

import base64
import hashlib
import hmac
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "support"))

from infra import free_port  # noqa: E402


def verify(secret, delivery_id, timestamp, body, signature, max_age=300):
    """The receiver's check, as MLflow documents it for `X-MLflow-Signature` (and the
    same for Cairn's `webhook-signature`): `v1,` + base64(HMAC-SHA256(secret,
    "{id}.{timestamp}.{body}")), and a timestamp no older than `max_age` seconds."""
    if not signature.startswith("v1,"):
        return False
    if abs(time.time() - int(timestamp)) > max_age:
        return False
    signed = f"{delivery_id}.{timestamp}.{body}".encode()
    expected = base64.b64encode(hmac.new(secret.encode(), signed, hashlib.sha256).digest()).decode()
    return hmac.compare_digest(signature.removeprefix("v1,"), expected)


class Receiver:
    """An HTTP endpoint that records every POST (headers, body) and can be taken down
    and brought back on the same port, or made to hold requests without answering."""

    def __init__(self):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.got = []
        self.lock = threading.Lock()
        self.hold = threading.Event()  # set: requests wait, unanswered
        self.server = None
        self.start()

    def start(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"])).decode()
                while receiver.hold.is_set():
                    time.sleep(0.05)
                    if receiver.server is None:
                        return  # taken down while holding: never answered
                with receiver.lock:
                    receiver.got.append((dict(self.headers), body))
                try:
                    self.send_response(200)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:
                    pass  # the sender went away (a killed server)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        server, self.server = self.server, None
        server.shutdown()
        server.server_close()

    def deliveries(self):
        with self.lock:
            return list(self.got)

    def wait_for(self, count, timeout=120):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self.deliveries()) < count:
            time.sleep(0.1)
        time.sleep(0.5)  # a repeat would show now
        return self.deliveries()

    def events(self, secret):
        """The delivered Cairn events, each signature checked."""
        out = []
        for headers, body in self.deliveries():
            h = {k.lower(): v for k, v in headers.items()}
            assert verify(secret, h["webhook-id"], h["webhook-timestamp"], body, h["webhook-signature"]), (
                "a delivery's signature does not verify"
            )
            out.append((h["webhook-id"], json.loads(body)))
        return out
