"""Building test images: random layers, a config, an OCI manifest, and indexes."""

from __future__ import annotations

import hashlib
import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from ocistore import Registry
from ocistore.storage import OCI_INDEX, OCI_MANIFEST, GCResult, Repository, collect_garbage

LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
CONFIG = "application/vnd.oci.image.config.v1+json"


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def descriptor(media_type: str, data: bytes, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": digest_of(data), "size": len(data), **extra}


@dataclass
class Image:
    config: bytes
    layers: list[bytes]
    manifest: bytes
    blobs: dict[str, bytes] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        return digest_of(self.manifest)


def make_image(
    seed: int,
    *,
    layers: int = 3,
    layer_size: int = 10_000,
    arch: str = "amd64",
    subject: bytes | None = None,
    artifact_type: str | None = None,
    annotations: dict[str, str] | None = None,
) -> Image:
    rng = random.Random(seed)
    layer_blobs = [rng.randbytes(layer_size + i) for i in range(layers)]
    config = (
        json.dumps(
            {"architecture": arch, "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}},
            sort_keys=True,
        ).encode()
        + f"\n{seed}".encode()
    )
    body: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(CONFIG, config),
        "layers": [descriptor(LAYER, blob) for blob in layer_blobs],
    }
    if artifact_type is not None:
        body["artifactType"] = artifact_type
    if subject is not None:
        body["subject"] = descriptor(OCI_MANIFEST, subject)
    if annotations is not None:
        body["annotations"] = annotations
    # Indented on purpose: the stored bytes must be exactly these, not a re-serialization.
    manifest = json.dumps(body, indent=3).encode()
    blobs = {digest_of(b): b for b in [config, *layer_blobs]}
    return Image(config=config, layers=layer_blobs, manifest=manifest, blobs=blobs)


def make_index(images: list[tuple[Image, str]]) -> bytes:
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                descriptor(
                    OCI_MANIFEST, image.manifest, platform={"architecture": arch, "os": "linux"}
                )
                for image, arch in images
            ],
        }
    ).encode()


def push(
    repo: Repository, image: Image, tag: str | None = None, *, algorithm: str = "sha256"
) -> str:
    """Stores the image's blobs and its manifest, addressed by a digest in ``algorithm``."""
    from ocistore import unmarshal_manifest

    blobs = repo.blobs()
    for data in image.blobs.values():
        blobs.put("application/octet-stream", data)
    manifest, _ = unmarshal_manifest(OCI_MANIFEST, image.manifest)
    return str(repo.manifests().put(manifest.in_algorithm(algorithm), tag=tag))


def check_tagged_images_complete(registry: Registry) -> int:
    """Asserts that every tag in every repository names a manifest whose blobs are all there,
    byte for byte; returns how many tags were checked."""
    checked = 0
    for name in registry.repositories():
        repo = registry.repository(name)
        for tag in repo.tags().all():
            manifest = repo.manifests().get(repo.tags().resolve(tag))
            for ref in manifest.references():
                data = repo.blobs().get(ref.digest)
                assert hashlib.sha256(data).hexdigest() == ref.digest.hex, (
                    f"{name}:{tag} {ref.digest}"
                )
            checked += 1
    return checked


def collect_while(
    registry: Registry, pusher: Callable[[int], None], workers: int = 4, timeout: float = 180
) -> list[GCResult]:
    """Garbage collection with no grace period (untagged manifests too) in a loop while
    ``pusher(0)`` ... ``pusher(workers - 1)`` run on threads of their own; raises the first
    exception of any thread; returns every collection's result."""
    stop = threading.Event()
    failures: list[BaseException] = []
    results: list[GCResult] = []

    def guarded(run: Callable[..., None], *args: int) -> None:
        try:
            run(*args)
        except BaseException as e:
            failures.append(e)

    def gc_loop() -> None:
        while not stop.is_set():
            results.append(collect_garbage(registry, min_age=timedelta(0), delete_untagged=True))

    collector = threading.Thread(target=guarded, args=(gc_loop,))
    pushers = [threading.Thread(target=guarded, args=(pusher, w)) for w in range(workers)]
    collector.start()
    for t in pushers:
        t.start()
    deadline = time.monotonic() + timeout
    for t in pushers:
        t.join(max(0.0, deadline - time.monotonic()))
    stop.set()
    collector.join(60)
    assert not any(t.is_alive() for t in [collector, *pushers]), "a thread is still running"
    if failures:
        raise failures[0]
    return results


def tar_of(name: str, content: bytes) -> bytes:
    """A tar archive holding one file: a layer a client can unpack (podman does)."""
    import io
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(content)
        tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()
