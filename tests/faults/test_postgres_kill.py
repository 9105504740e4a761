"""The database dies mid-burst: a PostgreSQL cluster of the test's own is killed with
SIGKILL while four writers push 240 versions through two servers, and started again
five seconds later. Every push must end with exactly one version — the CLI's retries
and idempotency keys included — numbers 1..240 without gaps, no digest twice, the
registry verified and its audit chain intact; the first 503 must come within about two
seconds of the kill, not after a pool's thirty-second timeout."""

import re
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "support"))
import infra  # noqa: E402

WRITERS = 4
PUSHES_EACH = 60
KILL_AFTER = 60  # pushes done before the kill
OUTAGE = 5.0  # seconds


def test_a_killed_database_loses_and_duplicates_nothing(tmp_path):
    pg = infra.ThrowawayPostgres()
    servers = []
    try:
        artifacts = tmp_path / "blobs"
        servers = [
            infra.CairnServer("--data", str(tmp_path / f"server-{i}"), "--db", pg.url,
                              "--artifacts", str(artifacts))
            for i in range(2)
        ]
        done_count = 0
        counted = threading.Lock()
        killed = threading.Event()

        def push(writer, i):
            nonlocal done_count
            model_file = tmp_path / f"w{writer}" / f"model-{i}.bin"
            model_file.parent.mkdir(exist_ok=True)
            model_file.write_bytes(f"writer {writer} push {i}\n".encode() * 64)
            server = servers[(writer + i) % 2]
            started = time.monotonic()
            result = infra.cairn("--registry", server.url, "push", str(model_file),
                                 "--model", "fault", check=False)
            with counted:
                done_count += 1
            return writer, i, started, result

        def writer(w):
            return [push(w, i) for i in range(PUSHES_EACH)]

        with ThreadPoolExecutor(WRITERS + 1) as pool:
            writers = [pool.submit(writer, w) for w in range(WRITERS)]
            infra.wait_until(lambda: done_count >= KILL_AFTER, "the first pushes", timeout=120)
            # Watch for the first 503 while the database is down.
            first_503 = []

            def probe():
                while not killed.is_set():
                    time.sleep(0.01)
                while not first_503:
                    for server in servers:
                        try:
                            answer = requests.get(f"{server.url}/api/v1/models/fault", timeout=10)
                        except requests.RequestException:
                            continue
                        if answer.status_code == 503:
                            first_503.append(time.monotonic())
                            assert answer.headers.get("retry-after"), answer.headers
                            assert answer.json()["code"] == "database_unavailable", answer.text
                            break
                    time.sleep(0.02)

            prober = pool.submit(probe)
            pg.kill()
            killed_at = time.monotonic()
            killed.set()
            time.sleep(OUTAGE)
            pg.start()
            prober.result(timeout=60)
            results = [r for w in writers for r in w.result(timeout=600)]

        assert first_503[0] - killed_at < 2.0, f"first 503 {first_503[0] - killed_at:.1f}s after the kill"
        failed = [(w, i, r.stderr) for w, i, _, r in results if r.returncode != 0]
        assert not failed, failed
        pushed = {}
        for w, i, _, r in results:
            m = re.fullmatch(r"fault@(\d+) (sha256:[0-9a-f]{64})\n", r.stdout)
            assert m, r.stdout
            pushed[(w, i)] = (int(m.group(1)), m.group(2))
        # Some pushes met the outage and said they retried.
        retried = [r.stderr for *_, r in results if "retrying" in r.stderr]
        assert retried
        print(f"{len(retried)} pushes retried; first 503 {first_503[0] - killed_at:.2f}s after the kill")

        versions = requests.get(f"{servers[0].url}/api/v1/models/fault/versions?limit=1000", timeout=30).json()
        numbers = [v["version"] for v in versions]
        assert numbers == list(range(1, WRITERS * PUSHES_EACH + 1)), numbers
        digests = {v["version"]: v["digest"] for v in versions}
        assert len(set(digests.values())) == len(digests), "a digest registered twice"
        # Each push answered the version that holds its content, and no other push did.
        assert sorted(n for n, _ in pushed.values()) == numbers
        for number, digest in pushed.values():
            assert f"sha256:{digests[number]}" == digest

        infra.cairn("--registry", servers[1].url, "verify", "--all")
        infra.cairn("--registry", servers[1].url, "audit", "verify")
    finally:
        for server in servers:
            server.stop()
        pg.stop()
