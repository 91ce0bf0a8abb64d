"""Real clients against `ocistore serve`: skopeo (Debian) and oras (PyPI)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from ocistore.storage import OCI_INDEX, OCI_MANIFEST

from .servers import Server, ocistore_server

LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
CONFIG = "application/vnd.oci.image.config.v1+json"


@pytest.fixture(scope="module", params=[["--no-native-front"], []], ids=["app", "front"])
def server(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("clients") / "root"
    with ocistore_server(root, workers=2, extra=request.param) as s:
        yield s


def host(server: Server) -> str:
    return server.url.removeprefix("http://")


class Layout:
    """An OCI image layout directory, written by hand from the image-spec."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "blobs" / "sha256").mkdir(parents=True)
        (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')

    def blob(self, data: bytes, media_type: str, **extra: Any) -> dict[str, Any]:
        digest = hashlib.sha256(data).hexdigest()
        (self.root / "blobs" / "sha256" / digest).write_bytes(data)
        return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data), **extra}

    def index(self, manifest: dict[str, Any], tag: str) -> None:
        entry = {**manifest, "annotations": {"org.opencontainers.image.ref.name": tag}}
        (self.root / "index.json").write_text(
            json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [entry]})
        )


def image_manifest(layout: Layout, arch: str, layer_sizes: list[int]) -> dict[str, Any]:
    config = json.dumps(
        {"architecture": arch, "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}
    ).encode()
    layers = [layout.blob(os.urandom(size), LAYER) for size in layer_sizes]
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": layout.blob(config, CONFIG),
        "layers": layers,
    }
    return layout.blob(
        json.dumps(manifest, indent=2).encode(),
        OCI_MANIFEST,
        platform={"architecture": arch, "os": "linux"},
    )


def skopeo(*args: str) -> None:
    done = subprocess.run(
        ["skopeo", "--insecure-policy", *args], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr


def blobs_of(layout: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (layout / "blobs" / "sha256").iterdir()}


def test_skopeo_round_trip(server: Server, tmp_path: Path) -> None:
    source = Layout(tmp_path / "source")
    amd = image_manifest(source, "amd64", [64 * 1024 * 1024 + 123, 2_000_000, 300_000])
    arm = image_manifest(source, "arm64", [1_500_000, 40_000])
    index = json.dumps(
        {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [amd, arm]}
    ).encode()
    source.index(source.blob(index, OCI_INDEX), "v1")

    ref = f"docker://{host(server)}/skopeo/app:v1"
    skopeo(
        "copy",
        "--all",
        "--preserve-digests",
        "--dest-tls-verify=false",
        f"oci:{source.root}:v1",
        ref,
    )
    with httpx.Client(base_url=server.url) as client:
        r = client.get("/v2/skopeo/app/manifests/v1", headers={"Accept": OCI_INDEX})
        assert r.content == index
    out = tmp_path / "out"
    skopeo("copy", "--all", "--preserve-digests", "--src-tls-verify=false", ref, f"oci:{out}:v1")
    assert blobs_of(out) == blobs_of(source.root)


def patch_count(server: Server) -> float:
    text = httpx.get(server.url + "/metrics").text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("ocistore_http_requests_total{")
        and 'method="PATCH"' in line
        and 'status="202"' in line
    )


def test_oras_chunked_push_pull_and_referrer(server: Server, tmp_path: Path) -> None:
    import oras.client
    import oras.oci

    artifact = tmp_path / "artifact.bin"
    artifact.write_bytes(os.urandom(3 * 1024 * 1024 + 5))
    client = oras.client.OrasClient(hostname=host(server), insecure=True)
    patches_before = patch_count(server)
    target = f"{host(server)}/oras/art:v1"
    old = Path.cwd()
    os.chdir(tmp_path)  # oras names layers by their path relative to the working directory
    try:
        response = client.push(
            target=target, files=[artifact.name], do_chunked=True, chunk_size=1024 * 1024
        )
        assert response.status_code == 201
        assert patch_count(server) - patches_before >= 3  # really chunked: 1 MiB PATCHes
        pulled = client.pull(target=target, outdir=str(tmp_path / "pulled"))
        assert [Path(p).read_bytes() for p in pulled] == [artifact.read_bytes()]

        with httpx.Client(base_url=server.url) as http:
            subject_raw = http.get("/v2/oras/art/manifests/v1", headers={"Accept": OCI_MANIFEST})
        subject = oras.oci.Subject(
            mediaType=OCI_MANIFEST,
            digest=subject_raw.headers["docker-content-digest"],
            size=len(subject_raw.content),
        )
        signature = tmp_path / "signature.txt"
        signature.write_text("signed")
        response = client.push(
            target=f"{host(server)}/oras/art:sig",
            files=[signature.name],
            subject=subject,
            manifest_annotations={"org.example.kind": "signature"},
        )
        assert response.status_code == 201
    finally:
        os.chdir(old)
    with httpx.Client(base_url=server.url) as http:
        referrers = http.get(f"/v2/oras/art/referrers/{subject.digest}").json()
    [entry] = referrers["manifests"]
    assert entry["annotations"]["org.example.kind"] == "signature"


def test_podman_pull(server: Server, tmp_path: Path) -> None:
    """podman unpacks what it pulls, so this image has a real tar layer and matching diff_id."""
    import gzip

    from .images import tar_of

    layer_tar = tar_of("hello.txt", b"hello from ocistore\n")
    layout = Layout(tmp_path / "layout")
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {
                "type": "layers",
                "diff_ids": ["sha256:" + hashlib.sha256(layer_tar).hexdigest()],
            },
        }
    ).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": layout.blob(config, CONFIG),
        "layers": [layout.blob(gzip.compress(layer_tar, mtime=0), LAYER)],
    }
    manifest_bytes = json.dumps(manifest).encode()
    layout.index(layout.blob(manifest_bytes, OCI_MANIFEST), "v1")
    ref = f"{host(server)}/podman/hello:v1"
    skopeo("copy", "--dest-tls-verify=false", f"oci:{layout.root}:v1", f"docker://{ref}")
    runroot = Path(tempfile.mkdtemp(prefix="ocp-"))  # podman wants a runroot under 50 characters
    storage = [
        "--root", str(tmp_path / "storage"), "--runroot", str(runroot),
        "--storage-driver", "vfs",
    ]  # fmt: skip
    pulled = subprocess.run(
        ["podman", *storage, "pull", "--tls-verify=false", ref],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert pulled.returncode == 0, pulled.stderr
    inspect = subprocess.run(
        ["podman", *storage, "image", "inspect", ref, "--format", "{{.Digest}}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert inspect.stdout.strip() == "sha256:" + hashlib.sha256(manifest_bytes).hexdigest()
    subprocess.run(["podman", *storage, "rmi", "-a", "-f"], capture_output=True, timeout=60)
    shutil.rmtree(runroot, ignore_errors=True)
