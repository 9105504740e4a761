"""`cairn audit verify` on a PostgreSQL registry: editing, deleting or swapping audit
rows directly in the database makes it exit 1 naming the entry."""

import subprocess

import infra
from infra import cairn


def psql(url, sql):
    subprocess.run(["psql", url, "-q", "-v", "ON_ERROR_STOP=1", "-c", sql], check=True, capture_output=True)


def test_tampering_in_postgres_is_named(database, tmp_path):
    registry = ["--registry", database.url, "--artifacts", str(tmp_path / "blobs")]
    model = tmp_path / "model"
    model.mkdir()
    for i in range(3):
        (model / "w.bin").write_text(f"weights {i}")
        cairn(*registry, "push", str(model), "--model", "m", "--no-git")
    cairn(*registry, "promote", "m@2", "--to", "production")
    ok = cairn(*registry, "audit", "verify")
    assert ok.stderr.startswith("ok: 4 audit entries"), ok.stderr

    def broken():
        done = cairn(*registry, "audit", "verify", check=False)
        assert done.returncode == 1, done.stderr
        return done.stderr

    psql(database.url, "CREATE TABLE saved AS SELECT * FROM audit_log")
    restore = "DELETE FROM audit_log; INSERT INTO audit_log SELECT * FROM saved"

    psql(database.url, "UPDATE audit_log SET actor = 'mallory' WHERE seq = 2")
    assert "entry 2" in broken()
    psql(database.url, restore)
    cairn(*registry, "audit", "verify")

    psql(database.url, "DELETE FROM audit_log WHERE seq = 3")
    assert "entry 3" in broken()
    psql(database.url, restore)

    psql(database.url, "UPDATE audit_log SET seq = -1 WHERE seq = 1; UPDATE audit_log SET seq = 1 WHERE seq = 2; UPDATE audit_log SET seq = 2 WHERE seq = -1")
    assert "entry 1" in broken()
    psql(database.url, restore)
    cairn(*registry, "audit", "verify")
