#!/usr/bin/env python3
"""What hostile clients can take from `cairn server`, measured: 2,000 idle connections,
300 slow-header clients (one header byte a second), 100 stalled uploads (10 MB sent of a
declared 100 MB, then nothing) and four 250 MB JSON bodies in flight (chunked, so no
length tells the server to refuse them early), all at once. Meanwhile, /healthz is asked
on fresh connections every 100 ms; the server's peak RSS is read from /proc at the end.

    python3 bench/resource_limits.py [--bin target/release/cairn] [--seconds 8]

Prints a table of /healthz latencies (median, max) and peak RSS, with the targets.
"""

import argparse
import os
import re
import resource
import socket
import statistics
import subprocess
import tempfile
import threading
import time

IDLE, SLOW, STALLED, JSON_BODIES = 2000, 300, 100, 4


def start(binary, data):
    proc = subprocess.Popen([binary, "server", "--port", "0", "--data", data],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env={**os.environ, "RUST_LOG": "error"})
    line = proc.stdout.readline()
    port = int(re.search(r"127\.0\.0\.1:(\d+)", line).group(1))
    return proc, port


def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def healthz_ms(port):
    started = time.perf_counter()
    with connect(port) as s:
        s.sendall(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode())
        answer = s.recv(1024)
    assert answer.startswith(b"HTTP/1.1 200"), answer[:80]
    return (time.perf_counter() - started) * 1000


def peak_rss_mib(pid):
    status = open(f"/proc/{pid}/status").read()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin", default="target/release/cairn")
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    data = tempfile.mkdtemp(prefix="cairn-limits-")
    proc, port = start(args.bin, data)
    host = f"Host: 127.0.0.1:{port}\r\n"
    stop = threading.Event()
    held = []
    errors = []

    def keep(s):
        held.append(s)

    def idle():
        for _ in range(IDLE):
            keep(connect(port))

    def slow_header(s):
        try:
            s.sendall(f"GET /api/v1/models HTTP/1.1\r\n{host}".encode())
            while not stop.is_set():
                s.sendall(b"X")
                stop.wait(1)
        except OSError:
            pass  # closed by the server's header timeout: as it should be

    def stalled_upload(s):
        try:
            s.sendall((f"PUT /api/v1/blobs/sha256/{'ab' * 32} HTTP/1.1\r\n{host}"
                       f"Content-Type: application/octet-stream\r\nContent-Length: {100 * 2**20}\r\n\r\n").encode())
            chunk = os.urandom(2**20)
            for _ in range(10):
                s.sendall(chunk)
            stop.wait()
        except OSError:
            pass

    def json_body(s):
        try:
            s.sendall((f"POST /api/2.0/mlflow/runs/log-batch HTTP/1.1\r\n{host}"
                       "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n").encode())
            piece = b'{"run_id": "' + b"x" * (2**20 - 20) + b'"'
            sent = 0
            while sent < 250 * 2**20 and not stop.is_set():
                s.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
                sent += len(piece)
        except OSError:
            pass  # refused (413) and closed once over the limit

    threads = [threading.Thread(target=idle)]
    for target, count in ((slow_header, SLOW), (stalled_upload, STALLED), (json_body, JSON_BODIES)):
        for _ in range(count):
            s = connect(port)
            keep(s)
            threads.append(threading.Thread(target=target, args=(s,), daemon=True))
    for t in threads:
        t.start()
    threads[0].join()

    latencies = []
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline:
        try:
            latencies.append(healthz_ms(port))
        except Exception as e:  # noqa: BLE001 - a refused health check is the result
            errors.append(repr(e))
        time.sleep(0.1)
    rss = peak_rss_mib(proc.pid)
    stop.set()
    for s in held:
        s.close()
    proc.terminate()
    proc.wait(timeout=30)

    print(f"load: {IDLE} idle connections, {SLOW} slow-header clients, {STALLED} stalled uploads, "
          f"{JSON_BODIES} x 250 MB chunked JSON bodies; {args.bin}")
    print(f"| measure | value | target |\n|---|---:|---:|")
    print(f"| /healthz on a fresh connection, median | {statistics.median(latencies):.1f} ms | |")
    print(f"| /healthz on a fresh connection, max ({len(latencies)} asked, {len(errors)} failed) "
          f"| {max(latencies):.1f} ms | < 100 ms |")
    print(f"| server peak RSS | {rss:.0f} MiB | < 256 MiB |")
    if errors:
        print("failed health checks:", errors[:3])
    ok = not errors and max(latencies) < 100 and rss < 256
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
