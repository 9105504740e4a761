"""The object store stops answering: the S3 test server (moto, which keeps its state in
memory, so it is paused with SIGSTOP rather than restarted) freezes for five seconds
in the middle of twenty pushes of 50 MB through a server. Every push must complete
after its retries, and the bucket must hold no partial blob: each object under the
blob prefix is a whole file that a push sent, at its digest."""

import hashlib
import os
import re
import signal
import sys
import threading
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "support"))
import infra  # noqa: E402

PUSHES = 20
WRITERS = 2
SIZE = 50 * 1024 * 1024
PAUSE_AFTER = 5  # pushes done before the pause
PAUSE = 5.0  # seconds


def bucket_objects(s3, bucket, prefix):
    """Every object under `prefix`: key → size (ListObjectsV2, unsigned as moto allows)."""
    objects, token = {}, None
    while True:
        params = {"list-type": "2", "prefix": prefix}
        if token:
            params["continuation-token"] = token
        answer = requests.get(f"{s3.endpoint}/{bucket}", params=params, timeout=30)
        answer.raise_for_status()
        root = ET.fromstring(answer.content)
        ns = {"s3": root.tag.split("}")[0].strip("{")} if root.tag.startswith("{") else {}
        find = (lambda e, tag: e.find(f"s3:{tag}", ns)) if ns else (lambda e, tag: e.find(tag))
        for item in root.findall("s3:Contents", ns) if ns else root.findall("Contents"):
            objects[find(item, "Key").text] = int(find(item, "Size").text)
        truncated = find(root, "IsTruncated")
        if truncated is None or truncated.text != "true":
            return objects
        token = find(root, "NextContinuationToken").text


def test_a_paused_object_store_leaves_no_partial_blob(tmp_path):
    s3 = infra.S3Server()
    server = None
    try:
        bucket = s3.create_bucket()
        # A read timeout shorter than the pause, so that requests fail during it (503
        # blob_store_unavailable) and the CLI's retries are what completes the pushes;
        # with the default (10 s) they would only stall for the pause.
        server = infra.CairnServer("--data", str(tmp_path / "server"),
                                   "--artifacts", f"s3://{bucket}/registry",
                                   env={**s3.env(), "CAIRN_ARTIFACTS_READ_TIMEOUT": "2s"})
        files = []
        for i in range(PUSHES):
            path = tmp_path / f"model-{i}.bin"
            content = os.urandom(SIZE)
            path.write_bytes(content)
            files.append((path, hashlib.sha256(content).hexdigest()))
        done = 0
        counted = threading.Lock()

        def push(i):
            nonlocal done
            path, _ = files[i]
            result = infra.cairn("--registry", server.url, "push", str(path), "--model", "big",
                                 check=False)
            with counted:
                done += 1
            return i, result

        with ThreadPoolExecutor(WRITERS) as pool:
            pushes = [pool.submit(push, i) for i in range(PUSHES)]
            infra.wait_until(lambda: done >= PAUSE_AFTER, "the first pushes", timeout=300)
            s3.proc.send_signal(signal.SIGSTOP)
            try:
                time.sleep(PAUSE)
            finally:
                s3.proc.send_signal(signal.SIGCONT)
            results = [p.result(timeout=600) for p in pushes]

        failed = [(i, r.stderr) for i, r in results if r.returncode != 0]
        assert not failed, failed
        pushed = set()  # version digests (of each version's manifest)
        for i, r in results:
            m = re.fullmatch(r"big@(\d+) sha256:([0-9a-f]{64})\n", r.stdout)
            assert m, r.stdout
            pushed.add(m.group(2))
        retried = [r.stderr for _, r in results if "retrying" in r.stderr]
        print(f"{len(retried)} of {PUSHES} pushes retried")
        assert retried, "the pause failed no request: the test tested nothing"
        assert any("blob_store_unavailable" in e for e in retried), retried

        versions = requests.get(f"{server.url}/api/v1/models/big/versions", timeout=30).json()
        assert [v["version"] for v in versions] == list(range(1, PUSHES + 1))
        # No partial blob: every object under the blob prefix is a file a push sent,
        # whole, at its own digest (staging objects of interrupted uploads are not blobs).
        blobs = bucket_objects(s3, bucket, "registry/blobs/sha256/")
        expected = {digest for _, digest in files}
        for key, size in blobs.items():
            digest = key.rsplit("/", 1)[-1]
            assert digest in expected, key
            assert size == SIZE, (key, size)
        assert {key.rsplit("/", 1)[-1] for key in blobs} == expected
        assert len(pushed) == PUSHES, "each push its own version digest"
        infra.cairn("--registry", server.url, "verify", "--all")
    finally:
        if server:
            server.stop()
        s3.proc.send_signal(signal.SIGCONT)
        s3.stop()
