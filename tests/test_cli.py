from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import blake3 as blake3_reference

from .helpers import pattern


def ocistore(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "ocistore.cli", *args], input=stdin, capture_output=True, timeout=120
    )


def test_ingest_cat_stat_hash(tmp_path: Path) -> None:
    root = tmp_path / "root"
    small = tmp_path / "small"
    small.write_bytes(b"small file")
    big = tmp_path / "big"
    big_data = pattern(70 * 1024 * 1024, 5)
    big.write_bytes(big_data)
    done = ocistore("ingest", str(small), str(big), "--root", str(root))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.decode().splitlines()
    small_digest = "sha256:" + hashlib.sha256(b"small file").hexdigest()
    big_digest = "sha256:" + hashlib.sha256(big_data).hexdigest()
    assert lines == [f"{small_digest}  {small}", f"{big_digest}  {big}"]

    cat = ocistore("cat", big_digest, "--root", str(root))
    assert cat.returncode == 0 and cat.stdout == big_data

    stat = ocistore("stat", small_digest, "--root", str(root))
    assert json.loads(stat.stdout) == {
        "mediaType": "application/octet-stream",
        "digest": small_digest,
        "size": 10,
    }

    h = ocistore("hash", str(small), "--alg", "blake3")
    assert (
        h.stdout.decode().strip() == "blake3:" + blake3_reference.blake3(b"small file").hexdigest()
    )
    h = ocistore("hash", "-", stdin=b"stdin bytes")
    assert h.stdout.decode().strip() == "sha256:" + hashlib.sha256(b"stdin bytes").hexdigest()


def test_errors_are_clear_and_exit_nonzero(tmp_path: Path) -> None:
    root = str(tmp_path / "root")
    missing = ocistore("cat", "sha256:" + "0" * 64, "--root", root)
    assert missing.returncode == 1
    assert b"BLOB_UNKNOWN" in missing.stderr and missing.stdout == b""
    bad = ocistore("stat", "sha256:../../etc", "--root", root)
    assert bad.returncode == 1 and b"DIGEST_INVALID" in bad.stderr
    absent = ocistore("ingest", str(tmp_path / "nope"), "--root", root)
    assert absent.returncode == 1 and b"No such file" in absent.stderr
    usage = ocistore("hash")
    assert usage.returncode == 2


def test_gc_and_purge_commands(tmp_path: Path) -> None:
    import os
    import time

    from ocistore import Registry

    from .images import make_image, push

    registry = Registry(tmp_path)
    image = make_image(1)
    push(registry.repository("a"), image, tag="v1")
    orphan = registry.blobs().put("x", b"orphan").digest
    upload = registry.repository("a").blobs().create()
    old = time.time() - 10 * 86400
    for path in tmp_path.rglob("*"):
        os.utime(path, (old, old))
    (tmp_path / "docker/registry/v2/repositories/a/_uploads" / upload.id / "startedat").write_text(
        "2020-01-01T00:00:00Z"
    )
    dry = ocistore("gc", str(tmp_path), "--dry-run")
    assert dry.returncode == 0 and f"deleting blob {orphan}" in dry.stdout.decode()
    # For scripts: one JSON document on standard output, the progress on standard error.
    dry = ocistore("gc", str(tmp_path), "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    document = json.loads(dry.stdout)
    assert document["dry_run"] and document["deleted_blobs"] == [str(orphan)]
    assert document["marked"] == len(image.blobs) + 1
    assert f"deleting blob {orphan}" in dry.stderr.decode()
    checked = ocistore("fsck", str(tmp_path), "--json")
    assert checked.returncode == 0, checked.stderr
    report = json.loads(checked.stdout)
    assert report["clean"] and report["problems"] == [] and report["blobs_checked"] >= 3
    assert registry.blobs().get(orphan) == b"orphan"
    done = ocistore("gc", str(tmp_path), "--min-age", "1h30m")
    assert done.returncode == 0, done.stderr
    assert "deleted 1 blobs" in done.stdout.decode()
    assert list(registry.blobs().enumerate()) != [] and orphan not in list(
        registry.blobs().enumerate()
    )
    bad = ocistore("gc", str(tmp_path), "--min-age", "soon")
    assert bad.returncode == 2 and b"invalid duration" in bad.stderr
    purge = ocistore("purge-uploads", str(tmp_path), "--older-than", "168h")
    assert purge.returncode == 0 and upload.id in purge.stdout.decode()
    assert not (tmp_path / "docker/registry/v2/repositories/a/_uploads" / upload.id).exists()


def test_version_and_python_dash_m() -> None:
    import tomllib

    expected = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())
    done = ocistore("--version")
    assert done.returncode == 0
    assert done.stdout.decode().strip() == f"ocistore {expected['project']['version']}"
    module = subprocess.run(
        [sys.executable, "-m", "ocistore", "gc", "--help"], capture_output=True, timeout=60
    )
    assert module.returncode == 0 and b"--lease-ttl" in module.stdout
