#!/usr/bin/env python3
"""What an idempotency key costs a registration: `POST /api/v1/models/{name}/versions`
(one stored one-file manifest, spread over 8 models; wrk -t2 -c8) without a key and with
a fresh `Idempotency-Key` per request — what every `cairn push` sends — side by side in
one run, the two alternating over the rounds, on SQLite or PostgreSQL.

    python bench/idempotency.py [--engine sqlite|postgres] [--seconds 5] [--rounds 3]

Needs wrk and a release build (cargo build --release -p cairn).
"""

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import urllib.request
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import wrk  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CAIRN = os.environ.get("CAIRN_BIN", str(ROOT / "target" / "release" / "cairn"))
POSTGRES = os.environ.get("CAIRN_TEST_POSTGRES", "postgres://postgres@127.0.0.1:5432/test")
MODELS = 8


class Server:
    def __init__(self, engine, work):
        args = [CAIRN, "server", "--port", "0", "--writes-per-second", "0", "--data", str(work)]
        self.db = None
        if engine == "postgres":
            self.db = f"cairn_bench_{uuid.uuid4().hex[:8]}"
            subprocess.run(["psql", POSTGRES, "-q", "-c", f"CREATE DATABASE {self.db}"], check=True)
            args += ["--db", POSTGRES.rsplit("/", 1)[0] + "/" + self.db]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True,
                                     env={**os.environ, "RUST_LOG": "warn"})
        line = self.proc.stdout.readline()
        self.url = next(w for w in line.split() if w.startswith("http://"))

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        if self.db:
            subprocess.run(["psql", POSTGRES, "-q", "-c", f"DROP DATABASE {self.db} WITH (FORCE)"],
                           check=True)


def lua(work, manifest, keyed):
    """A registration per request, to one of the models in turn; `keyed`: each with a
    key of its own, never used before (a fresh prefix per script: a key repeated would
    answer its first registration without writing)."""
    salt = uuid.uuid4().hex
    path = work / f"register-{salt}.lua"
    key = f'wrk.headers["Idempotency-Key"] = "{salt}-" .. first .. "-" .. n' if keyed else ""
    path.write_text(f"""
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [==[{json.dumps(manifest)}]==]
local threads = 0
setup = function(thread)
  threads = threads + 1
  thread:set("first", threads)
end
n = 0
request = function()
  n = n + 1
  {key}
  return wrk.format(nil, "/api/v1/models/bench-" .. (n % {MODELS}) .. "/versions")
end
""")
    return path


def measure(url, script, seconds):
    out = subprocess.run(wrk.command(url, script, seconds, 2, 8), capture_output=True, text=True,
                         check=True).stdout
    return wrk.parse(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--engine", choices=["sqlite", "postgres"], default="sqlite")
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cairn-idem-"))
    server = Server(args.engine, work / "data")
    try:
        content = b"weights for the idempotency benchmark"
        digest = hashlib.sha256(content).hexdigest()
        put = urllib.request.Request(f"{server.url}/api/v1/blobs/sha256/{digest}", data=content,
                                     method="PUT",
                                     headers={"Content-Type": "application/octet-stream"})
        urllib.request.urlopen(put).read()
        manifest = {"files": [{"path": "model.bin", "size": len(content), "sha256": digest}]}
        results = {False: [], True: []}
        for round_ in range(args.rounds):
            order = (False, True) if round_ % 2 == 0 else (True, False)
            for keyed in order:
                script = lua(work, manifest, keyed)
                results[keyed].append(measure(server.url, script, args.seconds))
    finally:
        server.stop()
    plain = statistics.median(r[0] for r in results[False])
    print(f"\nregistrations, {args.engine}, wrk -t2 -c8, {args.seconds:g} s x {args.rounds} rounds")
    print("| key | registrations/s | p99 ms | % of no key |")
    print("|---|---:|---:|---:|")
    for keyed in (False, True):
        ops = statistics.median(r[0] for r in results[keyed])
        p99 = statistics.median(r[2] for r in results[keyed])
        print(f"| {'a fresh key per request' if keyed else 'none'} | {ops:,.0f} | {p99:.1f} "
              f"| {100 * ops / plain:.0f}% |")


if __name__ == "__main__":
    main()
