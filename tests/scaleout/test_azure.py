"""`--artifacts az://CONTAINER/PREFIX` against Azurite (the Azure Blob Storage emulator,
from npm) on loopback: the same blob store code as S3, through object_store's Azure
backend — push, pull, verify and garbage collection."""

import filecmp
import os

import infra
from infra import cairn


def test_azure_blob_storage_holds_the_blobs(tmp_path):
    azure = infra.AzureBlobServer(tmp_path / "azurite")
    try:
        container = azure.create_container()
        server = infra.CairnServer(
            "--data", str(tmp_path / "data"), "--artifacts", f"az://{container}/registry", env=azure.env()
        )
        try:
            registry = ["--registry", server.url]
            model = tmp_path / "model"
            model.mkdir()
            (model / "config.json").write_text('{"layers": 3}')
            # Over one 8 MiB part: streamed as a block-blob upload.
            (model / "weights.bin").write_bytes(os.urandom(12 * 1024 * 1024))
            cairn(*registry, "push", str(model), "--model", "az", "--no-git")
            (model / "config.json").write_text('{"layers": 4}')
            cairn(*registry, "push", str(model), "--model", "az", "--no-git")
            cairn(*registry, "pull", "az@1", "-o", str(tmp_path / "out"))
            assert filecmp.cmp(tmp_path / "out" / "weights.bin", model / "weights.bin", shallow=False)
            assert cairn(*registry, "verify", "--all").stderr.startswith("ok: 2 version(s), 3 blob(s)")

            cairn(*registry, "delete", "az@1")
            freed = cairn(*registry, "gc", "--grace", "0s").stdout.split()
            assert len(freed) == 1, freed  # the first config.json, used by version 1 only
            cairn(*registry, "verify", "--all")
        finally:
            server.stop()
    finally:
        azure.stop()
