#!/usr/bin/env python3
"""What webhooks cost the writes that cause their events: registry write throughput
(`registered-models/set-tag` through the MLflow API, wrk -t2 -c8, spread over 8 models)
on a server with no webhook and with 3 webhooks taking every event, side by side in one
run, on SQLite or PostgreSQL; then how long the deliveries take to catch up, and that
every one arrived.

    python bench/webhooks.py [--engine sqlite|postgres] [--seconds 5] [--rounds 3]

Needs wrk and a release build (cargo build --release -p cairn). The receiver is a
minimal asyncio HTTP server in its own process at idle CPU priority (it stands for
another machine), answering 200 at once.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import wrk  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CAIRN = os.environ.get("CAIRN_BIN", str(ROOT / "target" / "release" / "cairn"))
POSTGRES = os.environ.get("CAIRN_TEST_POSTGRES", "postgres://postgres@127.0.0.1:5432/test")
MODELS = 8
KEY = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="

RECEIVER = r'''
import asyncio, sys
count = 0
ids = set()
class Hook(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport, self.buffer = transport, b""
    def data_received(self, data):
        global count
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, rest = self.buffer.split(b"\r\n\r\n", 1)
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"webhook-id":
                    ids.add(value.strip())
            if len(rest) < length:
                return
            self.buffer = rest[length:]
            if head.startswith(b"GET"):
                body = f"{count} {len(ids)}".encode()
            else:
                count += 1
                body = b"ok"
            self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
async def main():
    server = await asyncio.get_running_loop().create_server(Hook, "127.0.0.1", int(sys.argv[1]))
    print("ready", flush=True)
    await server.serve_forever()
asyncio.run(main())
'''


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url, path, body):
    req = urllib.request.Request(url + path, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read() or b"{}")


def get(url):
    with urllib.request.urlopen(url, timeout=30) as r:
        return r.read().decode()


class Server:
    def __init__(self, engine, work):
        args = [CAIRN, "server", "--port", "0", "--writes-per-second", "0", "--webhook-allow-private",
                "--data", str(work)]
        self.db = None
        if engine == "postgres":
            self.db = f"cairn_bench_{uuid.uuid4().hex[:8]}"
            subprocess.run(["psql", POSTGRES, "-q", "-c", f"CREATE DATABASE {self.db}"], check=True)
            args += ["--db", POSTGRES.rsplit("/", 1)[0] + "/" + self.db]
        env = {**os.environ, "RUST_LOG": "warn", "CAIRN_WEBHOOK_SECRET_KEY": KEY}
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, env=env)
        line = self.proc.stdout.readline()
        self.url = next(w for w in line.split() if w.startswith("http://"))

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        if self.db:
            subprocess.run(["psql", POSTGRES, "-q", "-c", f"DROP DATABASE {self.db} WITH (FORCE)"], check=True)


def lua(work):
    path = work / "set-tag.lua"
    path.write_text(f"""
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local threads = 0
setup = function(thread)
  threads = threads + 1
  thread:set("first", threads * 1000000000)
end
n = 0
init = function(args) n = first or 0 end
request = function()
  n = n + 1
  local body = string.format('{{"name": "m%d", "key": "k", "value": "%d"}}', n % {MODELS}, n)
  return wrk.format(nil, "/api/2.0/mlflow/registered-models/set-tag", nil, body)
end
""")
    return path


def measure(engine, hooks, receiver_url, receiver_port, seconds, work):
    server = Server(engine, work / f"{hooks}-{uuid.uuid4().hex[:6]}")
    try:
        for m in range(MODELS):
            post(server.url, "/api/2.0/mlflow/registered-models/create", {"name": f"m{m}"})
        before, before_unique = map(int, get(f"http://127.0.0.1:{receiver_port}/count").split())
        for i in range(hooks):
            subprocess.run([CAIRN, "--registry", server.url, "webhooks", "create", "--url", receiver_url,
                            "--events", "*", "--model", "m*", "--secret", "bench-secret-0123456789",
                            "--name", f"hook-{i}"],
                           check=True, capture_output=True)
        head0 = json.loads(get(f"{server.url}/api/v1/audit/head"))["seq"]
        out = subprocess.run(wrk.command(server.url, lua(work), seconds, 2, 8),
                             capture_output=True, text=True, check=True).stdout
        ops, p50, p99, failed = wrk.parse(out)
        time.sleep(0.5)  # requests wrk left in flight still commit
        events = json.loads(get(f"{server.url}/api/v1/audit/head"))["seq"] - head0
        started = time.monotonic()
        catch_up = None
        if hooks:
            while time.monotonic() - started < 300:
                unique = int(get(f"http://127.0.0.1:{receiver_port}/count").split()[1]) - before_unique
                if unique >= events * hooks:
                    catch_up = time.monotonic() - started
                    break
                time.sleep(0.05)
            time.sleep(0.5)
            got, unique = map(int, get(f"http://127.0.0.1:{receiver_port}/count").split())
            got, unique = got - before, unique - before_unique
            assert unique == events * hooks, f"{unique} deliveries for {events} events x {hooks} webhooks"
            repeats = got - unique
        else:
            repeats = 0
        return ops, p99, failed, events, catch_up, repeats
    finally:
        server.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--engine", choices=["sqlite", "postgres"], default="sqlite")
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is needed: apt-get install wrk")
    port = free_port()
    # The receiver stands for another machine: at the lowest priority, it takes no CPU
    # the server under test would have had.
    receiver = subprocess.Popen(["chrt", "--idle", "0", sys.executable, "-c", RECEIVER, str(port)],
                                stdout=subprocess.PIPE, text=True)
    receiver.stdout.readline()
    receiver_url = f"http://127.0.0.1:{port}/hook"
    work = Path(tempfile.mkdtemp())
    try:
        rows = {}
        for _ in range(args.rounds):
            for hooks in (0, 3):
                rows.setdefault(hooks, []).append(measure(args.engine, hooks, receiver_url, port, args.seconds, work))
        print(f"registry writes (set-tag, wrk -t2 -c8, {args.seconds:g} s, median of {args.rounds}), {args.engine}")
        print("| webhooks | writes/s | p99 ms | failed | deliveries caught up after | repeated deliveries |")
        print("|---:|---:|---:|---:|---:|---:|")
        base = statistics.median(r[0] for r in rows[0])
        for hooks, runs in rows.items():
            ops = statistics.median(r[0] for r in runs)
            p99 = statistics.median(r[1] for r in runs)
            failed = sum(r[2] for r in runs)
            lag = [r[4] for r in runs if r[4] is not None]
            lag_text = f"{statistics.median(lag):.1f} s" if lag else "-"
            ratio = "" if hooks == 0 else f" ({ops / base:.0%} of none)"
            repeats = sum(r[5] for r in runs)
            print(f"| {hooks} | {ops:,.0f}{ratio} | {p99:.1f} | {failed} | {lag_text} | {repeats} |")
    finally:
        receiver.terminate()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
