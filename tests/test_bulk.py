from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import ocistore.bulk as bulk
import pytest
from ocistore import Registry
from ocistore.bulk import export_image, import_image
from ocistore.errors import ErrTagUnknown, OciStoreError
from ocistore.storage import DOCKER_MANIFEST, OCI_INDEX

from .test_clients import Layout, image_manifest


def two_platform_layout(root: Path, big: int = 3_000_000) -> tuple[Layout, bytes]:
    layout = Layout(root)
    amd = image_manifest(layout, "amd64", [big, 200_000, 50_000])
    arm = image_manifest(layout, "arm64", [150_000, 40_000])
    index = json.dumps(
        {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [amd, arm]}
    ).encode()
    layout.index(layout.blob(index, OCI_INDEX), "v1")
    return layout, index


def blob_files(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (root / "blobs" / "sha256").iterdir()}


def tar_of(directory: Path, target: Path) -> Path:
    with tarfile.open(target, "w") as tar:
        for path in sorted(directory.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(directory)), recursive=False)
    return target


def test_layout_directory_round_trip(tmp_path: Path) -> None:
    layout, index = two_platform_layout(tmp_path / "layout")
    registry = Registry(tmp_path / "root")
    seen: list[int] = []
    result = import_image(layout.root, "library/app", "v1", registry=registry, progress=seen.append)
    assert result.media_type == OCI_INDEX
    assert str(result.digest) == "sha256:" + hashlib.sha256(index).hexdigest()
    assert result.blobs_skipped == 0 and result.blobs_ingested == 7  # 2 configs + 5 layers
    assert sum(seen) == result.bytes_ingested
    repo = registry.repository("library/app")
    assert repo.tags().resolve("v1") == result.digest
    assert repo.manifests().get(result.digest).payload() == index
    out = tmp_path / "out"
    entry = export_image(registry, "library/app", "v1", out)
    assert entry.digest == result.digest
    assert blob_files(out) == blob_files(layout.root)
    exported_index = json.loads((out / "index.json").read_text())
    assert exported_index["manifests"][0]["annotations"] == {
        "org.opencontainers.image.ref.name": "v1"
    }
    assert json.loads((out / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}


def test_layout_tar_and_skipping_what_is_stored(tmp_path: Path) -> None:
    layout, _index = two_platform_layout(tmp_path / "layout")
    archive = tar_of(layout.root, tmp_path / "image.tar")
    registry = Registry(tmp_path / "root")
    first = import_image(archive, "from/tar", "v1", registry=registry)
    assert first.blobs_ingested == 7
    # Again, into another repository: every blob is already stored, none is read.
    second = import_image(archive, "other/repo", "v2", registry=registry)
    assert (second.blobs_ingested, second.blobs_skipped, second.bytes_ingested) == (0, 7, 0)
    assert registry.repository("other/repo").tags().resolve("v2") == first.digest
    out = tmp_path / "out"
    export_image(registry, "other/repo", "v2", out)
    assert blob_files(out) == blob_files(layout.root)


def docker_save_tarball(target: Path) -> tuple[bytes, list[bytes]]:
    layers = []
    for i in range(2):
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            data = f"layer {i}\n".encode() * 1000
            info = tarfile.TarInfo(f"file{i}.txt")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        layers.append(buffer.getvalue())
    config = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
    with tarfile.open(target, "w") as tar:

        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        add("abc123.json", config)
        for i, layer in enumerate(layers):
            add(f"layer{i}/layer.tar", layer)
        manifest = [
            {
                "Config": "abc123.json",
                "RepoTags": ["app:v1"],
                "Layers": ["layer0/layer.tar", "layer1/layer.tar"],
            }
        ]
        add("manifest.json", json.dumps(manifest).encode())
    return config, layers


def test_docker_save_tarball_becomes_schema2(tmp_path: Path) -> None:
    config, layers = docker_save_tarball(tmp_path / "saved.tar")
    registry = Registry(tmp_path / "root")
    result = import_image(tmp_path / "saved.tar", "docker/app", "v1", registry=registry)
    assert result.media_type == DOCKER_MANIFEST
    manifest = registry.repository("docker/app").manifests().get(result.digest)
    refs = manifest.references()
    assert str(refs[0].digest) == "sha256:" + hashlib.sha256(config).hexdigest()
    assert [str(r.digest) for r in refs[1:]] == [
        "sha256:" + hashlib.sha256(layer).hexdigest() for layer in layers
    ]
    assert registry.repository("docker/app").blobs().get(refs[1].digest) == layers[0]


def test_interrupted_import_resumes_without_rereading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bulk, "CHECKPOINT_EVERY", 1024 * 1024)
    layout, _ = two_platform_layout(tmp_path / "layout", big=20 * 1024 * 1024)
    registry = Registry(tmp_path / "root")
    total = 0

    def crash_midway(n: int) -> None:
        nonlocal total
        total += n
        if total > 12 * 1024 * 1024:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        import_image(layout.root, "big/app", "v1", registry=registry, jobs=1, progress=crash_midway)
    # Nothing half-done is visible: no tag, no manifest.
    with pytest.raises(ErrTagUnknown):
        registry.repository("big/app").tags().resolve("v1")
    result = import_image(layout.root, "big/app", "v1", registry=registry, jobs=1)
    # The big layer continued from its last checkpoint: far fewer bytes than the image went in.
    image_bytes = sum(len(b) for b in blob_files(layout.root).values())
    assert result.bytes_ingested < image_bytes - 10 * 1024 * 1024
    out = tmp_path / "out"
    export_image(registry, "big/app", "v1", out)
    assert blob_files(out) == blob_files(layout.root)
    assert not list((registry.v2 / "_ocistore" / "imports").glob("*.json"))


def test_bad_sources(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "root")
    with pytest.raises(OciStoreError, match="no such file"):
        import_image(tmp_path / "missing", "a/b", "v1", registry=registry)
    layout, _ = two_platform_layout(tmp_path / "layout")
    victim = next(
        p for p in (layout.root / "blobs" / "sha256").iterdir() if p.stat().st_size == 40_000
    )
    victim.unlink()
    with pytest.raises(OciStoreError, match="no blob"):
        import_image(layout.root, "a/b", "v1", registry=registry)
    with pytest.raises(ErrTagUnknown):
        registry.repository("a/b").tags().resolve("v1")
    compressed = tmp_path / "image.tar.gz"
    with tarfile.open(compressed, "w:gz") as tar:
        tar.add(layout.root / "index.json", arcname="index.json")
    with pytest.raises(OciStoreError, match="uncompressed tar"):
        import_image(compressed, "a/b", "v1", registry=registry)


def test_cli_import_export(tmp_path: Path) -> None:
    layout, index = two_platform_layout(tmp_path / "layout")
    root = tmp_path / "root"
    run = [sys.executable, "-m", "ocistore.cli"]
    done = subprocess.run(
        [*run, "import", str(layout.root), "cli/app:v1", "--root", str(root)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    digest = "sha256:" + hashlib.sha256(index).hexdigest()
    assert done.stdout.startswith(f"cli/app:v1@{digest}")
    out = tmp_path / "out"
    done = subprocess.run(
        [*run, "export", "cli/app:v1", str(out), "--root", str(root)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert blob_files(out) == blob_files(layout.root)
    done = subprocess.run(
        [*run, "export", "cli/app", str(out), "--root", str(root)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert os.path.isdir(out)


def test_a_truncated_blob_stops_the_import_and_stores_nothing_of_it(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "root")
    layout, _ = two_platform_layout(tmp_path / "layout")
    victim = next(
        p for p in (layout.root / "blobs" / "sha256").iterdir() if p.stat().st_size == 200_000
    )
    with victim.open("r+b") as f:
        f.truncate(123_456)
    # The bytes are verified before anything is published: the digest names what is missing.
    with pytest.raises(OciStoreError, match="did not match"):
        import_image(layout.root, "a/b", "v1", registry=registry)
    with pytest.raises(ErrTagUnknown):
        registry.repository("a/b").tags().resolve("v1")
    blob_dir = tmp_path / "root" / "docker" / "registry" / "v2" / "blobs" / "sha256"
    assert not (blob_dir / victim.name[:2] / victim.name).exists()


def test_a_sha512_manifest_is_exported_and_imported_under_its_digest(tmp_path: Path) -> None:
    from ocistore import Digest

    from .images import make_image, push

    source = Registry(tmp_path / "source")
    image = make_image(70)
    digest = Digest(push(source.repository("alg/app"), image, tag="v1", algorithm="sha512"))
    entry = export_image(source, "alg/app", "v1", tmp_path / "out")
    assert entry.digest == digest
    assert (tmp_path / "out/blobs/sha512" / digest.hex).read_bytes() == image.manifest
    target = Registry(tmp_path / "target")
    result = import_image(tmp_path / "out", "alg/copy", "v1", registry=target)
    assert result.digest == digest
    copied = target.repository("alg/copy")
    assert copied.tags().resolve("v1") == digest
    assert copied.manifests().get(digest).payload() == image.manifest


def test_sha512_layers_round_trip_through_export_and_import(tmp_path: Path) -> None:
    # Layers named by sha512 digests: pushed into a repository they are stored under their
    # sha256 (distribution's alias layout); export writes them under the digest the manifest
    # names, and import links them back, under that digest.
    import hashlib
    import json

    from ocistore import Digest, unmarshal_manifest
    from ocistore.storage import OCI_MANIFEST

    source = Registry(tmp_path / "source")
    repo = source.repository("alg/layers")
    layer = b"a layer named by its sha512" * 1000
    config = b'{"architecture":"amd64","os":"linux"}'
    layer512 = "sha512:" + hashlib.sha512(layer).hexdigest()
    repo.blobs().put("application/vnd.oci.image.layer.v1.tar", layer, algorithm="sha512")
    config_desc = repo.blobs().put("application/vnd.oci.image.config.v1+json", config)
    body = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": config_desc.media_type, "digest": str(config_desc.digest),
                   "size": config_desc.size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer512,
                    "size": len(layer)}],
    }  # fmt: skip
    manifest, _ = unmarshal_manifest(OCI_MANIFEST, json.dumps(body).encode())
    repo.manifests().put(manifest, tag="v1")
    export_image(source, "alg/layers", "v1", tmp_path / "out")
    assert (tmp_path / "out/blobs/sha512" / layer512[7:]).read_bytes() == layer
    target = Registry(tmp_path / "target")
    import_image(tmp_path / "out", "alg/copy", "v1", registry=target)
    assert target.repository("alg/copy").blobs().get(Digest(layer512)) == layer
