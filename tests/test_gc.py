from __future__ import annotations

import json
import os
import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from ocistore import Digest, Registry, unmarshal_manifest
from ocistore.errors import ErrBlobUnknown, ErrManifestVerification
from ocistore.storage import OCI_INDEX, GarbageCollector, collect_garbage, purge_uploads

from .images import (
    Image,
    check_tagged_images_complete,
    collect_while,
    digest_of,
    make_image,
    make_index,
    push,
)

LONG_AGO = time.time() - 7 * 86400


def age(path: Path) -> None:
    os.utime(path, (LONG_AGO, LONG_AGO))


def age_everything(registry: Registry) -> None:
    for path in Path(registry.root).rglob("*"):
        if path.is_file():
            age(path)


def test_sweeps_only_unreferenced_old_blobs(tmp_path: Path) -> None:
    registry = Registry(tmp_path)
    repo = registry.repository("a")
    image = make_image(1)
    push(repo, image, tag="v1")
    orphan = registry.blobs().put("x", b"orphan").digest
    age_everything(registry)
    fresh_orphan = registry.blobs().put("x", b"fresh orphan").digest

    dry = collect_garbage(registry, dry_run=True)
    assert dry.deleted_blobs == [orphan]
    assert registry.blobs().get(orphan) == b"orphan"

    result = collect_garbage(registry)
    assert result.deleted_blobs == [orphan]
    assert result.kept_recent == [fresh_orphan]
    assert set(map(str, result.marked)) >= {image.digest, *image.blobs}
    assert sorted(map(str, registry.blobs().enumerate())) == sorted(
        [image.digest, *image.blobs, str(fresh_orphan)]
    )
    assert collect_garbage(registry, min_age=timedelta(0)).deleted_blobs == []  # slack: 1 s
    age(Path(registry.blobs().path(fresh_orphan)))
    assert collect_garbage(registry).deleted_blobs == [fresh_orphan]


def test_delete_untagged_keeps_what_tags_reach(tmp_path: Path) -> None:
    registry = Registry(tmp_path)
    repo = registry.repository("a")
    amd, arm = make_image(2, arch="amd64"), make_image(3, arch="arm64")
    push(repo, amd)
    push(repo, arm)
    index, _ = unmarshal_manifest(OCI_INDEX, make_index([(amd, "amd64"), (arm, "arm64")]))
    repo.manifests().put(index, tag="multi")
    signature = make_image(4, subject=amd.manifest, artifact_type="application/x.sig")
    push(repo, signature)
    untagged = make_image(5)
    push(repo, untagged)
    age_everything(registry)

    result = collect_garbage(registry, delete_untagged=True)
    assert result.deleted_manifests == [("a", untagged.digest)]
    assert not repo.manifests().exists(untagged.digest)
    for kept in (amd, arm, signature):
        assert repo.manifests().exists(kept.digest)
    assert set(result.deleted_blobs) == {untagged.digest, *untagged.blobs}
    # Without --delete-untagged nothing that is stored in a repository goes.
    push(repo, make_image(6))
    age_everything(registry)
    assert collect_garbage(registry).deleted_blobs == []


def test_purge_uploads(tmp_path: Path) -> None:
    registry = Registry(tmp_path)
    old = registry.repository("a").blobs().create()
    new = registry.repository("a").blobs().create()
    global_old = registry.blobs().create()
    uploads = Path(registry.root) / "docker/registry/v2/repositories/a/_uploads"
    (uploads / old.id / "startedat").write_text("2020-01-01T00:00:00Z")
    gdir = Path(registry.root) / "docker/registry/v2/_uploads" / global_old.id
    (gdir / "startedat").write_text("garbage")  # unreadable: the directory's age decides
    os.utime(gdir, (LONG_AGO, LONG_AGO))
    week = timedelta(days=7)
    keys = [str(p.relative_to(tmp_path)) for p in (gdir, uploads / old.id)]
    assert purge_uploads(registry, older_than=timedelta(days=3), dry_run=True) == keys
    assert (uploads / old.id).exists()
    purged = purge_uploads(registry, older_than=week, now=datetime.now(UTC) + week / 2)
    assert sorted(purged) == sorted(keys)
    assert not (uploads / old.id).exists() and (uploads / new.id).exists()


def test_blob_referenced_between_mark_and_sweep_is_kept(tmp_path: Path) -> None:
    """The race GC must survive: a blob nobody references when GC marks, which a push reuses
    (without uploading it again) before GC sweeps."""
    registry = Registry(tmp_path)
    image = make_image(7)
    for data in image.blobs.values():
        registry.blobs().put("x", data)  # stored, but linked and referenced by nothing
    age_everything(registry)
    gc = GarbageCollector(registry, min_age=timedelta(0))
    gc.mark()
    assert not set(image.blobs) & set(map(str, gc.result.marked))
    push(registry.repository("a"), image, tag="v1")  # the blobs exist: commits are no-ops
    gc.sweep()
    assert gc.result.deleted_blobs == []
    assert set(map(str, gc.result.kept_recent)) == {*image.blobs, image.digest}
    assert check_tagged_images_complete(registry) == 1


def test_push_after_sweep_is_refused_cleanly(tmp_path: Path) -> None:
    """The other order: GC deletes the blob first; the manifest put then finds it missing and
    stores nothing, and the tag keeps its old target."""
    registry = Registry(tmp_path)
    repo = registry.repository("a")
    old = make_image(8)
    push(repo, old, tag="v1")
    image = make_image(9)
    for data in image.blobs.values():
        repo.blobs().put("x", data)
    age_everything(registry)
    assert set(map(str, collect_garbage(registry, min_age=timedelta(0)).deleted_blobs)) == set(
        image.blobs
    )
    manifest, _ = unmarshal_manifest(None, image.manifest)
    try:
        repo.manifests().put(manifest, tag="v1")
    except ErrManifestVerification as e:
        assert len(e.errors) == len(image.blobs)
    else:
        raise AssertionError("a manifest over collected blobs was accepted")
    assert str(repo.tags().get("v1").digest) == old.digest
    assert not repo.manifests().exists(image.digest)


def test_gc_in_a_loop_during_concurrent_pushes(tmp_path: Path) -> None:
    """GC with no grace period, deleting untagged manifests, runs continuously while four
    threads push images that share a base layer, retag and untag; afterwards every tagged image
    is complete."""
    registry = Registry(tmp_path)
    base_layer = random.Random(0).randbytes(20_000)

    def with_base(image: Image) -> Image:
        body = json.loads(image.manifest)
        body["layers"].insert(0, {"mediaType": "application/x", "digest": digest_of(base_layer),
                                  "size": len(base_layer)})  # fmt: skip
        image.blobs[digest_of(base_layer)] = base_layer
        image.manifest = json.dumps(body).encode()
        return image

    def pusher(worker: int) -> None:
        rng = random.Random(worker)
        repo = registry.repository(f"team/app{worker % 2}")
        # A small pool of images pushed over and over under a few tags: images fall out of
        # use, age past the collector's slack, get collected (or not yet), and are pushed
        # again, reusing blobs that were garbage a moment ago.
        pool = [
            with_base(make_image(worker * 1000 + k, layers=2, layer_size=3000)) for k in range(6)
        ]
        deadline = time.monotonic() + 90
        for i in range(40):
            assert time.monotonic() < deadline
            image = pool[rng.randrange(len(pool))]
            tag = f"w{worker}-{i % 3}"
            for _attempt in range(50):
                try:
                    blobs = repo.blobs()
                    for data in image.blobs.values():
                        blobs.put("application/octet-stream", data)
                    time.sleep(rng.random() * 0.05)  # the window between blobs and manifest
                    manifest, _ = unmarshal_manifest(None, image.manifest)
                    repo.manifests().put(manifest, tag=tag)
                    break
                except (ErrManifestVerification, ErrBlobUnknown):
                    # GC (with no grace period) took a blob between its upload and the
                    # manifest, or between a commit and its link: push again.
                    continue
            else:
                raise AssertionError("push never got through")
            if i % 7 == 3:
                repo.tags().untag(tag)
            time.sleep(0.05)

    runs = collect_while(registry, pusher)
    assert len(runs) >= 2
    deleted = sum(len(result.deleted_blobs) for result in runs)
    collect_garbage(registry, min_age=timedelta(0), delete_untagged=True)
    checked = check_tagged_images_complete(registry)
    assert checked >= 6
    assert deleted > 0  # the collector really did collect while the pushes ran


def test_sha512_manifests_are_marked_swept_and_checked(tmp_path: Path) -> None:
    # Manifests pushed by sha512 digests, one tagged, one not: the collector follows them,
    # keeps what the tag reaches and sweeps the rest; fsck re-hashes the sha512 blobs.
    from ocistore.storage.fsck import fsck

    registry = Registry(tmp_path)
    repo = registry.repository("alg/gc")
    image = make_image(60)
    digest = Digest(push(repo, image, tag="v1", algorithm="sha512"))
    assert digest.algorithm == "sha512"
    untagged = make_image(61)
    loose_digest = Digest(push(repo, untagged, algorithm="sha512"))
    orphan = registry.blobs().put("x", b"orphan", algorithm="sha512").digest
    age_everything(registry)
    result = collect_garbage(registry, delete_untagged=True)
    assert ("alg/gc", loose_digest) in result.deleted_manifests
    assert orphan in result.deleted_blobs and loose_digest in result.deleted_blobs
    assert set(map(str, untagged.blobs)) <= set(map(str, result.deleted_blobs))
    assert repo.manifests().get(digest).payload() == image.manifest
    assert registry.blobs().get(digest) == image.manifest
    for blob, data in image.blobs.items():
        assert repo.blobs().get(blob) == data
    report = fsck(registry)
    # The swept blobs' links stay (the collector deletes bytes, not links, as distribution's):
    # fsck names them, and nothing else.
    assert report.blobs_checked == len(image.blobs) + 1
    assert {p.kind for p in report.problems} == {"dangling-layer-link"}
    assert len(report.problems) == len(untagged.blobs)


def test_an_alias_goes_with_the_blob_it_names(tmp_path: Path) -> None:
    # A blob pushed by a sha512 digest leaves ocistore's global alias (sha512 -> the sha256
    # its bytes are stored under). While the blob is kept, so is the alias; once the collector
    # deletes the blob, the alias goes too, and a mount by the sha512 digest finds nothing.
    import hashlib
    from datetime import timedelta

    from ocistore._core import Layout
    from ocistore.errors import ErrBlobUnknown
    from ocistore.storage import collect_garbage

    registry = Registry(tmp_path / "root")
    data = b"bytes a sha512 push stored under their sha256"
    sha512 = "sha512:" + hashlib.sha512(data).hexdigest()
    repo = registry.repository("alias/gc")
    repo.blobs().put("application/octet-stream", data, algorithm="sha512")
    alias = tmp_path / "root" / Layout.blob_alias(sha512)
    collect_garbage(registry, min_age=timedelta(hours=1))  # recent: kept, alias and all
    assert alias.is_file()
    data_file = registry.blobs().path(digest_of(data))
    for old in (data_file, alias):  # past the collector's slack
        os.utime(old, (time.time() - 60, time.time() - 60))
    collect_garbage(registry, min_age=timedelta(0))  # no manifest refers to it: collected
    assert not Path(data_file).exists() and not alias.exists()
    with pytest.raises(ErrBlobUnknown):
        registry.repository("alias/other").blobs().link(sha512)
