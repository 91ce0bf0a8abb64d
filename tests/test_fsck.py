from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ocistore import Registry
from ocistore.storage.fsck import fsck

from .images import digest_of, make_image, push


def v2(registry: Registry) -> Path:
    return registry.v2


def test_a_clean_tree_is_clean(tmp_path: Path) -> None:
    registry = Registry(tmp_path)
    image = make_image(1)
    push(registry.repository("a"), image, tag="v1")
    report = fsck(registry)
    assert report.clean and report.problems == []
    assert report.blobs_checked == len(image.blobs) + 1  # and the manifest
    assert report.bytes_checked == sum(map(len, image.blobs.values())) + len(image.manifest)


def test_alias_links_are_what_they_should_be_and_repair_leaves_them(tmp_path: Path) -> None:
    # A blob pushed by a sha512 digest is stored under its sha256 and linked under both, each
    # link holding "sha256:..." (distribution's layout): fsck takes that for what it is, and
    # --repair changes nothing of it. An alias to bytes that are gone is dangling.
    import hashlib

    registry = Registry(tmp_path)
    push(registry.repository("alias/app"), make_image(9), tag="v1")  # a repository fsck walks
    blobs = registry.repository("alias/app").blobs()
    data = b"stored under its sha256"
    sha512 = "sha512:" + hashlib.sha512(data).hexdigest()
    writer = blobs.create(algorithm="sha512")
    writer.write(data)
    writer.commit(sha512)
    for repair in (False, True):
        report = fsck(registry, repair=repair)
        assert report.problems == [], report.problems
    assert blobs.get(sha512) == data
    registry.blobs().delete(digest_of(data))
    kinds = sorted(p.kind for p in fsck(registry, repair=True).problems)
    assert kinds == ["dangling-layer-link", "dangling-layer-link"]  # the sha256 and the alias


# The malformed link hides layer 1 from the repository and layer 2 is gone: both make the
# manifest incomplete until repaired.
EXPECTED_KINDS = [
    "corrupt-blob",
    "dangling-layer-link",
    "incomplete-manifest",
    "incomplete-manifest",
    "malformed-layer-link",
    "stray-in-blob-tree",
]


def test_finds_and_repairs_what_it_can(tmp_path: Path) -> None:
    registry = Registry(tmp_path)
    repo = registry.repository("a")
    image = make_image(2, layers=3)
    push(repo, image, tag="v1")
    layer0, layer1, layer2 = (digest_of(layer) for layer in image.layers)
    # A blob whose bytes went bad.
    data = Path(registry.blobs().path(layer0))
    corrupted = bytearray(data.read_bytes())
    corrupted[10] ^= 0xFF
    data.write_bytes(corrupted)
    # A link whose content disagrees with its path.
    link1 = repo.path / "_layers/sha256" / layer1[7:] / "link"
    link1.write_text("garbage")
    # A blob that vanished: its link dangles, and the manifest is incomplete.
    registry.blobs().delete(layer2)
    # An upload with no data (crash debris, tidied by --repair), and a stray in the blob tree.
    orphan = registry.repository("a").blobs().create()
    (repo.path / "_uploads" / orphan.id / "data").unlink()
    (v2(registry) / "blobs/sha256/zz/not-a-digest").mkdir(parents=True)
    # What an interrupted delete leaves (an empty blob directory) is tidied, not a problem.
    empty = v2(registry) / "blobs/sha256/ab" / ("ab" + "0" * 62)
    empty.mkdir(parents=True)
    # Nor is a link directory whose write was interrupted before the rename.
    unfinished = repo.path / "_layers/sha256" / ("cd" * 32)
    unfinished.mkdir(parents=True)
    (unfinished / ".link.tmp-1234").write_text("sha256:")
    # Nor is a first tag write cut off before its current link (the tag never existed).
    half_tag = repo.path / "_manifests/tags/half"
    (half_tag / "index/sha256" / image.digest[7:]).mkdir(parents=True)
    assert repo.tags().all() == ["v1"]

    report = fsck(registry)
    assert sorted(p.kind for p in report.problems) == EXPECTED_KINDS
    assert not report.clean
    assert data.read_bytes() == bytes(corrupted)  # without --repair nothing changes

    repaired = fsck(registry, repair=True)
    fixed = {p.kind for p in repaired.problems if p.repaired}
    assert {"corrupt-blob", "malformed-layer-link", "dangling-layer-link"} <= fixed
    # The corrupt bytes are kept aside, not deleted.
    quarantined = v2(registry) / "_ocistore/quarantine" / f"sha256-{layer0[7:]}"
    assert quarantined.read_bytes() == bytes(corrupted)
    assert link1.read_text() == layer1
    assert not (repo.path / "_uploads" / orphan.id).exists()
    assert not empty.exists() and not unfinished.exists() and not half_tag.exists()
    # What needs a person stays reported: the image is incomplete, the stray stays.
    after = fsck(registry)
    left = {p.kind for p in after.problems}
    assert left == {"incomplete-manifest", "stray-in-blob-tree"}


def test_tags_to_missing_manifests_are_reported(tmp_path: Path) -> None:
    registry = Registry(tmp_path)
    repo = registry.repository("a")
    push(repo, make_image(3), tag="v1")
    current = repo.path / "_manifests/tags/v1/current/link"
    current.write_text(digest_of(b"no such manifest"))
    report = fsck(registry, repair=True)
    assert [p.kind for p in report.problems] == ["tag-to-missing-manifest"]
    assert not report.clean
    current.write_bytes(b"\xff\xfe")
    assert [p.kind for p in fsck(registry).problems] == ["malformed-tag"]


def test_cli_exit_codes_and_rate_limit(tmp_path: Path) -> None:
    registry = Registry(tmp_path)
    push(registry.repository("a"), make_image(4), tag="v1")
    run = [sys.executable, "-m", "ocistore.cli", "fsck", str(tmp_path)]
    done = subprocess.run([*run, "--rate-mib", "100"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "0 problems" in done.stdout
    layer = next(iter(registry.repository("a").blobs().enumerate()))
    path = Path(registry.blobs().path(layer))
    path.write_bytes(path.read_bytes() + b"x")
    done = subprocess.run(run, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "corrupt-blob" in done.stdout
    done = subprocess.run([*run, "--repair"], capture_output=True, text=True, timeout=60)
    assert "repaired: corrupt-blob" in done.stdout
    assert done.returncode == 1  # the image that used the blob is now incomplete: reported
