"""Concurrency: many clients on one blob over HTTP, and GC running through 1,000 pushes."""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from ocistore import Registry, unmarshal_manifest
from ocistore.errors import ErrBlobUnknown, ErrManifestVerification

from .images import check_tagged_images_complete, collect_while, make_image
from .servers import Server, ocistore_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with ocistore_server(tmp_path_factory.mktemp("concurrency") / "root", workers=2) as s:
        yield s


def test_eight_clients_push_the_same_blob(server: Server) -> None:
    data = random.Random(1).randbytes(4 * 1024 * 1024 + 7)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    barrier = threading.Barrier(8)
    results: list[int | BaseException] = []

    def push() -> None:
        try:
            with httpx.Client(base_url=server.url, timeout=60) as c:
                location = c.post("/v2/same/blob/blobs/uploads/").headers["location"]
                half = len(data) // 2
                assert (
                    c.patch(
                        location, content=data[:half], headers={"Content-Range": f"0-{half - 1}"}
                    ).status_code
                    == 202
                )
                barrier.wait(30)  # everyone commits at the same moment
                results.append(
                    c.put(location, params={"digest": digest}, content=data[half:]).status_code
                )
        except BaseException as e:
            results.append(e)

    threads = [threading.Thread(target=push) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert results == [201] * 8
    with httpx.Client(base_url=server.url, timeout=60) as c:
        assert c.get(f"/v2/same/blob/blobs/{digest}").content == data
    uploads = Path(server.root) / "docker/registry/v2/repositories/same/blob/_uploads"
    assert list(uploads.iterdir()) == []


def test_gc_in_a_loop_during_a_thousand_pushes(tmp_path: Path) -> None:
    registry = Registry(tmp_path)
    pushes = 0
    lock = threading.Lock()

    def pusher(worker: int) -> None:
        nonlocal pushes
        rng = random.Random(worker)
        repo = registry.repository(f"load/app{worker}")
        pool = [make_image(worker * 100 + k, layers=1, layer_size=512) for k in range(8)]
        deadline = time.monotonic() + 120
        for i in range(250):
            assert time.monotonic() < deadline, "bounded in time"
            image = pool[rng.randrange(len(pool))]
            for _ in range(50):
                try:
                    for data in image.blobs.values():
                        repo.blobs().put("application/octet-stream", data)
                    manifest, _ = unmarshal_manifest(None, image.manifest)
                    repo.manifests().put(manifest, tag=f"t{i % 4}")
                    break
                except (ErrManifestVerification, ErrBlobUnknown):
                    continue  # GC (no grace period) took a blob mid-push: push again
            else:
                raise AssertionError("a push never got through")
            with lock:
                pushes += 1

    runs = collect_while(registry, pusher)
    assert pushes == 1000 and len(runs) >= 1
    assert check_tagged_images_complete(registry) == 16  # four tags in each of four repos
