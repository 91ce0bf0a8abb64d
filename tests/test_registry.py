from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from ocistore import Descriptor, Registry, unmarshal_manifest
from ocistore.errors import (
    ErrBlobMounted,
    ErrBlobUnknown,
    ErrBlobUploadUnknown,
    ErrDigestInvalid,
    ErrManifestBlobUnknown,
    ErrManifestUnknownRevision,
    ErrManifestVerification,
    ErrRepositoryNameInvalid,
    ErrRepositoryUnknown,
    ErrTagInvalid,
    ErrTagUnknown,
    ErrUnsupported,
)
from ocistore.interfaces import BlobStore as BlobStoreProtocol
from ocistore.storage import GLOBAL_SCOPE, OCI_INDEX, OCI_MANIFEST, ManifestValidation
from ocistore.storage.driver import FilesystemDriver, ObjectStoreDriver

from .images import CONFIG, LAYER, descriptor, digest_of, make_image, make_index, push


@pytest.fixture
def registry(storage: FilesystemDriver | ObjectStoreDriver) -> Registry:
    return Registry(storage)


def read(registry: Registry, key: str) -> bytes | None:
    """An object of the layout, through the registry's own storage driver."""
    return registry.driver.read(f"docker/registry/v2/{key}")


def test_layout_of_a_pushed_image(registry: Registry) -> None:
    image = make_image(1)
    repo = registry.repository("library/alpine")
    digest = push(repo, image, tag="3.20")
    base = "repositories/library/alpine"
    for blob in (image.config, *image.layers):
        d = digest_of(blob)
        assert read(registry, f"{base}/_layers/sha256/{d[7:]}/link") == d.encode()
        assert read(registry, f"blobs/sha256/{d[7:9]}/{d[7:]}/data") == blob
    for key in (
        f"_manifests/revisions/sha256/{digest[7:]}/link",
        "_manifests/tags/3.20/current/link",
        f"_manifests/tags/3.20/index/sha256/{digest[7:]}/link",
    ):
        assert read(registry, f"{base}/{key}") == digest.encode()
    assert read(registry, f"blobs/sha256/{digest[7:9]}/{digest[7:]}/data") == image.manifest


def test_manifest_get_returns_exact_bytes(registry: Registry) -> None:
    image = make_image(2)
    repo = registry.repository("a")
    digest = push(repo, image)
    manifest = repo.manifests().get(digest)
    assert manifest.payload() == image.manifest
    assert repo.manifests().exists(digest)
    with pytest.raises(ErrManifestUnknownRevision):
        repo.manifests().get(digest, media_types=[OCI_INDEX])
    assert repo.manifests().get(digest, media_types=[OCI_MANIFEST]).payload() == image.manifest
    other = registry.repository("b")
    with pytest.raises(ErrManifestUnknownRevision) as info:
        other.manifests().get(digest)
    assert info.value.code == "MANIFEST_UNKNOWN"
    assert not other.manifests().exists(digest)


def test_linked_blobs_are_per_repository(registry: Registry) -> None:
    a = registry.repository("a").blobs()
    b = registry.repository("b").blobs()
    assert isinstance(a, BlobStoreProtocol)
    desc = a.put("x", b"only in a")
    assert a.get(desc.digest) == b"only in a" and a.stat(desc.digest).size == 9
    for call in (b.stat, b.get, b.open):
        with pytest.raises(ErrBlobUnknown):
            call(desc.digest)
    assert list(a.enumerate()) == [desc.digest] and list(b.enumerate()) == []
    # The bytes are in the global store once.
    assert registry.blobs().stat(desc.digest).size == 9


def test_uploads_live_in_the_repository(registry: Registry) -> None:
    repo = registry.repository("team/app")
    w = repo.blobs().create()
    assert registry.driver.list("docker/registry/v2/repositories/team/app/_uploads") == [w.id]
    w.write(b"chunk one ")
    w.close()
    w = repo.blobs().resume(w.id)
    w.write(b"chunk two")
    desc = w.commit(digest_of(b"chunk one chunk two"))
    assert repo.blobs().get(desc.digest) == b"chunk one chunk two"
    with pytest.raises(ErrBlobUploadUnknown):
        registry.repository("other").blobs().resume(w.id)


def test_cross_repository_mount(registry: Registry) -> None:
    src = registry.repository("src")
    dst = registry.repository("dst")
    desc = src.blobs().put("x", b"shared layer")
    with pytest.raises(ErrBlobMounted) as info:
        dst.blobs().create(mount_from=("src", desc.digest))
    assert info.value.descriptor.digest == desc.digest
    assert dst.blobs().get(desc.digest) == b"shared layer"
    # Nothing to mount from: a normal upload instead.
    missing = digest_of(b"absent")
    w = registry.repository("third").blobs().create(mount_from=("src", missing))
    assert w.size == 0
    w.cancel()
    # A repository that does not link the blob cannot be mounted from, even if the registry has it.
    w = registry.repository("fourth").blobs().create(mount_from=("third", desc.digest))
    w.cancel()
    with pytest.raises(ErrBlobUnknown):
        registry.repository("fourth").blobs().stat(desc.digest)
    # Mount without a source: any blob the registry holds.
    with pytest.raises(ErrBlobMounted):
        registry.repository("fifth").blobs().create(mount_from=(None, desc.digest))
    with pytest.raises(ErrRepositoryNameInvalid):
        dst.blobs().create(mount_from=("../src", desc.digest))


def test_manifest_verification_collects_every_problem(registry: Registry) -> None:
    image = make_image(3, layers=3)
    repo = registry.repository("a")
    repo.blobs().put("x", image.layers[1])  # config, layers 0 and 2 are missing
    manifest, _ = unmarshal_manifest(OCI_MANIFEST, image.manifest)
    with pytest.raises(ErrManifestVerification) as info:
        repo.manifests().put(manifest, tag="t")
    err = info.value
    assert err.code == "MANIFEST_INVALID"
    assert all(isinstance(e, ErrManifestBlobUnknown) for e in err.errors)
    assert sorted(str(e.detail["digest"]) for e in err.errors) == sorted(
        [digest_of(image.config), digest_of(image.layers[0]), digest_of(image.layers[2])]
    )
    assert not repo.manifests().exists(manifest.digest)
    with pytest.raises(ErrTagUnknown):
        repo.tags().get("t")
    # A blob the registry has but this repository does not link is missing too.
    registry.repository("other").blobs().put("x", image.config)
    with pytest.raises(ErrManifestVerification):
        repo.manifests().put(manifest)


def test_foreign_layers_need_not_be_stored(registry: Registry) -> None:
    repo = registry.repository("win")
    repo.blobs().put("x", b"{}")
    body = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(CONFIG, b"{}"),
        "layers": [descriptor(LAYER, b"foreign", urls=["https://example.com/layer"])],
    }
    manifest, _ = unmarshal_manifest(OCI_MANIFEST, json.dumps(body).encode())
    assert repo.manifests().exists(repo.manifests().put(manifest))


def test_index_children_must_exist(registry: Registry) -> None:
    repo = registry.repository("multi")
    amd, arm = make_image(4, arch="amd64"), make_image(5, arch="arm64")
    push(repo, amd)
    index_bytes = make_index([(amd, "amd64"), (arm, "arm64")])
    index, _ = unmarshal_manifest(OCI_INDEX, index_bytes)
    with pytest.raises(ErrManifestVerification) as info:
        repo.manifests().put(index)
    assert [str(e.detail["digest"]) for e in info.value.errors] == [arm.digest]
    push(repo, arm)
    digest = repo.manifests().put(index, tag="latest")
    assert repo.tags().get("latest") == Descriptor(OCI_INDEX, digest, len(index_bytes))


def test_sparse_indexes_as_configured(storage: FilesystemDriver | ObjectStoreDriver) -> None:
    amd, arm = make_image(6, arch="amd64"), make_image(7, arch="arm64")
    index_bytes = make_index([(amd, "amd64"), (arm, "arm64")])
    index, _ = unmarshal_manifest(OCI_INDEX, index_bytes)
    # none: an index whose children are absent (one platform copied) is accepted.
    sparse = Registry(storage, validation=ManifestValidation(index_children="none"))
    repo = sparse.repository("sparse/none")
    push(repo, amd)
    digest = repo.manifests().put(index, tag="all")
    assert repo.manifests().get(digest).payload() == index_bytes
    with pytest.raises(ErrManifestUnknownRevision):
        repo.manifests().get(arm.digest)  # a pull of the missing child: unknown
    # list: only the children of the listed platforms must be there.
    listed = Registry(
        storage, validation=ManifestValidation("list", index_platforms=(("linux", "arm64"),))
    )
    repo = listed.repository("sparse/list")
    push(repo, amd)
    with pytest.raises(ErrManifestVerification) as info:
        repo.manifests().put(index)
    assert [str(e.detail["digest"]) for e in info.value.errors] == [arm.digest]
    push(repo, arm)
    repo.manifests().put(index)
    # A sparse image (a layer absent) only where blobs are not required.
    image = make_image(8)
    manifest, _ = unmarshal_manifest(OCI_MANIFEST, image.manifest)
    strict = sparse.repository("sparse/image")
    with pytest.raises(ErrManifestVerification):
        strict.manifests().put(manifest)
    lenient = Registry(storage, validation=ManifestValidation(blobs_required=False))
    repo = lenient.repository("sparse/image")
    repo.blobs().put("x", image.config)
    digest = repo.manifests().put(manifest)
    assert repo.manifests().get(digest).payload() == image.manifest


def test_foreign_layer_urls_as_configured(registry: Registry) -> None:
    allow = ManifestValidation(
        urls_allow=(re.compile(r"^https://([^/]+\.)?example\.com/"),),
        urls_deny=(re.compile(r"^https://deny\.example\.com/"),),
    )
    refuse_all = ManifestValidation(urls_allow=())
    cases = [
        (allow, "https://example.com/layer", True),
        (allow, "https://cdn.example.com/layer", True),
        (allow, "https://deny.example.com/layer", False),
        (allow, "https://example.org/layer", False),
        (allow, "ftp://example.com/layer", False),
        (refuse_all, "https://example.com/layer", False),
        (ManifestValidation(), "http://anywhere/layer", True),
    ]
    for i, (validation, url, accepted) in enumerate(cases):
        checked = Registry(registry.driver, validation=validation)
        repo = checked.repository(f"urls/case{i}")
        repo.blobs().put("x", b"{}")
        body = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(CONFIG, b"{}"),
            "layers": [descriptor(LAYER, b"foreign", urls=[url])],
        }
        manifest, _ = unmarshal_manifest(OCI_MANIFEST, json.dumps(body).encode())
        if accepted:
            assert repo.manifests().exists(repo.manifests().put(manifest)), url
        else:
            with pytest.raises(ErrManifestVerification) as info:
                repo.manifests().put(manifest)
            assert [e.code for e in info.value.errors] == ["MANIFEST_BLOB_UNKNOWN"], url
            assert not repo.manifests().exists(manifest.digest)


def test_tags(registry: Registry) -> None:
    repo = registry.repository("a")
    one, two = push(repo, make_image(6)), push(repo, make_image(7))
    tags = repo.tags()
    tags.tag("v1", one)
    tags.tag("latest", one)
    assert tags.all() == ["latest", "v1"]
    assert tags.lookup(one) == ["latest", "v1"] and tags.lookup(two) == []
    tags.tag("latest", Descriptor(OCI_MANIFEST, two, 1))
    assert tags.get("latest").digest == two
    history = "docker/registry/v2/repositories/a/_manifests/tags/latest/index/sha256"
    assert registry.driver.list(history) == sorted([one[7:], two[7:]])
    tags.untag("v1")
    assert tags.all() == ["latest"]
    with pytest.raises(ErrTagUnknown) as info:
        tags.untag("v1")
    assert info.value.code == "MANIFEST_UNKNOWN"
    with pytest.raises(ErrTagUnknown):
        tags.get("nope")
    with pytest.raises(ErrManifestUnknownRevision):
        tags.tag("v2", digest_of(b"not a manifest here"))
    for bad in ("../../etc", "-x", ".x", "a/b", "", "x" * 129):
        with pytest.raises(ErrTagInvalid):
            tags.tag(bad, one)
        with pytest.raises(ErrTagInvalid):
            tags.get(bad)
    with pytest.raises(ErrRepositoryUnknown) as unknown:
        registry.repository("never").tags().all()
    assert unknown.value.code == "NAME_UNKNOWN"


def test_manifest_delete_removes_tags_and_referrers(registry: Registry) -> None:
    repo = registry.repository("a")
    subject = make_image(8)
    subject_digest = push(repo, subject, tag="v1")
    sig = make_image(9, subject=subject.manifest, artifact_type="application/x.sig")
    sbom = make_image(10, subject=subject.manifest, artifact_type="application/x.sbom",
                      annotations={"created": "now"})  # fmt: skip
    sig_digest, sbom_digest = push(repo, sig), push(repo, sbom)
    index = repo.referrers(subject_digest)
    assert index.media_type == OCI_INDEX
    entries = {str(d.digest): d for d in index.manifests}
    assert set(entries) == {sig_digest, sbom_digest}
    assert entries[sbom_digest].artifact_type == "application/x.sbom"
    assert entries[sbom_digest].annotations == {"created": "now"}
    assert entries[sig_digest].size == len(sig.manifest)
    filtered = repo.referrers(subject_digest, artifact_type="application/x.sig")
    assert [str(d.digest) for d in filtered.manifests] == [sig_digest]
    assert json.loads(filtered.payload())["manifests"][0]["artifactType"] == "application/x.sig"
    repo.manifests().delete(sig_digest)
    assert [str(d.digest) for d in repo.referrers(subject_digest).manifests] == [sbom_digest]
    repo.manifests().delete(subject_digest)
    assert repo.tags().all() == []
    with pytest.raises(ErrManifestUnknownRevision):
        repo.manifests().delete(subject_digest)
    assert repo.referrers(digest_of(b"nothing")).manifests == ()


def test_catalog_order_and_pagination(registry: Registry) -> None:
    names = ["b", "a-b", "a/b", "a", "a/b/c", "z9", "a.b"]
    for name in names:
        push(registry.repository(name), make_image(11))
    registry.repository("uploads-only").blobs().create()
    expected = sorted(names, key=lambda n: n.replace("/", "\0"))
    assert registry.repositories() == expected == ["a", "a/b", "a/b/c", "a-b", "a.b", "b", "z9"]
    assert registry.repositories(n=2) == expected[:2]
    assert registry.repositories(last="a/b", n=3) == expected[2:5]
    assert registry.repositories(last="z9") == []
    assert registry.scope() == GLOBAL_SCOPE


def test_remove_repository_keeps_nested_ones(registry: Registry) -> None:
    push(registry.repository("a"), make_image(12), tag="t")
    push(registry.repository("a/b"), make_image(13), tag="t")
    registry.remove("a")
    assert registry.repositories() == ["a/b"]
    assert registry.repository("a/b").tags().all() == ["t"]
    with pytest.raises(ErrRepositoryUnknown):
        registry.remove("a")
    with pytest.raises(ErrRepositoryNameInvalid):
        registry.remove("../a")


def test_deletes_can_be_disabled(registry: Registry) -> None:
    registry = Registry(registry.driver, delete_enabled=False)
    repo = registry.repository("a")
    digest = push(repo, make_image(14), tag="t")
    layer = next(iter(repo.blobs().enumerate()))
    for call in (
        lambda: repo.manifests().delete(digest),
        lambda: repo.tags().untag("t"),
        lambda: repo.blobs().delete(layer),
        lambda: registry.remove("a"),
    ):
        with pytest.raises(ErrUnsupported) as info:
            call()
        assert info.value.code == "UNSUPPORTED"
    assert repo.manifests().exists(digest)


def test_blob_unlink(registry: Registry) -> None:
    repo = registry.repository("a")
    desc = repo.blobs().put("x", b"layer")
    repo.blobs().delete(desc.digest)
    with pytest.raises(ErrBlobUnknown):
        repo.blobs().stat(desc.digest)
    assert registry.blobs().get(desc.digest) == b"layer"  # bytes stay until GC
    with pytest.raises(ErrBlobUnknown):
        repo.blobs().delete(desc.digest)


def test_bad_input_touches_nothing(registry: Registry) -> None:
    for bad in ("", "UPPER", "a/../b", "/abs", "a" * 300):
        with pytest.raises(ErrRepositoryNameInvalid):
            registry.repository(bad)
    repo = registry.repository("a")
    for bad_digest in ("sha256:../../x", "sha256:" + "A" * 64):
        with pytest.raises(ErrDigestInvalid):
            repo.blobs().stat(bad_digest)
        with pytest.raises(ErrDigestInvalid):
            repo.manifests().get(bad_digest)
    assert not registry.driver.exists("docker")


def test_a_link_with_wrong_content_is_not_trusted(registry: Registry) -> None:
    repo = registry.repository("a")
    desc = repo.blobs().put("x", b"real")
    other = digest_of(b"other")
    link = f"docker/registry/v2/repositories/a/_layers/sha256/{desc.digest.hex}/link"
    registry.driver.write(link, other.encode())
    with pytest.raises(ErrBlobUnknown):
        repo.blobs().stat(desc.digest)
    assert list(repo.blobs().enumerate()) == []


def test_repository_link_is_written_before_the_blob_is_published(tmp_path: Path) -> None:
    # Publication made to fail (a file where the blob's directory goes): the commit, one call
    # into the core, has already written the link, so what is left is a dangling link (fsck
    # repairs it) and a resumable upload, never a published blob no repository links.
    registry = Registry(tmp_path)
    repo = registry.repository("order")
    w = repo.blobs().create()
    w.write(b"ordered")
    digest = digest_of(b"ordered")
    link = f"docker/registry/v2/repositories/order/_layers/sha256/{digest[7:]}/link"
    blocker = tmp_path / "docker/registry/v2/blobs/sha256" / digest[7:9]
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_bytes(b"in the way")
    with pytest.raises(OSError):
        w.commit(digest)
    assert registry.driver.read(link) == digest.encode()
    assert not registry.driver.exists(f"docker/registry/v2/blobs/sha256/{digest[7:9]}/{digest[7:]}")
    blocker.unlink()
    w.close()
    again = repo.blobs().resume(w.id)
    assert again.commit(digest).size == len(b"ordered")
    assert repo.blobs().get(digest) == b"ordered"
