"""Differential tests against distribution 2.8.2 (Debian's docker-registry): trees written by
one are served by the other, byte for byte, and an upload started on one is finished by the
other."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

from ocistore import Registry, hashing, unmarshal_manifest
from ocistore.descriptor import OCTET_STREAM
from ocistore.storage import OCI_INDEX, OCI_MANIFEST

from .distribution import Client, reference_registry
from .images import Image, digest_of, make_image, make_index, push


def images() -> tuple[Image, Image, bytes]:
    amd = make_image(100, layers=4, layer_size=300_000, arch="amd64")
    arm = make_image(101, layers=3, layer_size=200_000, arch="arm64")
    return amd, arm, make_index([(amd, "amd64"), (arm, "arm64")])


def test_tree_written_by_distribution_is_read_by_ocistore(tmp_path: Path) -> None:
    root = tmp_path / "root"
    amd, arm, index = images()
    with reference_registry(root, tmp_path) as client:
        for image in (amd, arm):
            for digest, data in image.blobs.items():
                client.push_blob("library/app", data, digest)
            client.put_manifest("library/app", image.digest, image.manifest, OCI_MANIFEST)
        client.put_manifest("library/app", "amd64-only", amd.manifest, OCI_MANIFEST)
        index_digest = client.put_manifest("library/app", "latest", index, OCI_INDEX)
        client.push_blob("other/repo", b"lonely", digest_of(b"lonely"))

    registry = Registry(root)
    assert registry.repositories() == ["library/app"]  # no manifest, not in the catalog
    repo = registry.repository("library/app")
    assert repo.tags().all() == ["amd64-only", "latest"]
    assert str(repo.tags().get("latest").digest) == index_digest == digest_of(index)
    assert repo.manifests().get(index_digest).payload() == index
    assert str(repo.tags().get("amd64-only").digest) == amd.digest
    for image in (amd, arm):
        assert repo.manifests().get(image.digest).payload() == image.manifest
        for digest, data in image.blobs.items():
            assert repo.blobs().get(digest) == data
            with repo.blobs().open(digest) as r:
                assert r.read_at(len(data) - 5, 5) == data[-5:]
    assert sorted(map(str, registry.repository("other/repo").blobs().enumerate())) == [
        digest_of(b"lonely")
    ]
    assert {str(d) for d in registry.blobs().enumerate()} == {
        *amd.blobs,
        *arm.blobs,
        amd.digest,
        arm.digest,
        index_digest,
        digest_of(b"lonely"),
    }


def test_tree_written_by_ocistore_is_served_by_distribution(tmp_path: Path) -> None:
    root = tmp_path / "root"
    amd, arm, index = images()
    registry = Registry(root)
    repo = registry.repository("library/app")
    push(repo, amd, tag="amd64-only")
    push(repo, arm)
    manifest, _ = unmarshal_manifest(OCI_INDEX, index)
    repo.manifests().put(manifest, tag="latest")
    push(registry.repository("second"), make_image(102), tag="v1")

    with reference_registry(root, tmp_path) as client:
        catalog = json.loads(client.request("GET", "/v2/_catalog").body)
        assert catalog == {"repositories": ["library/app", "second"]}
        tags = json.loads(client.request("GET", "/v2/library/app/tags/list").body)
        assert tags["name"] == "library/app"
        assert sorted(tags["tags"]) == ["amd64-only", "latest"]  # listed in directory order
        latest = client.get_manifest("library/app", "latest")
        assert latest.status == 200 and latest.body == index
        assert latest.headers["docker-content-digest"] == digest_of(index)
        assert latest.headers["content-type"] == OCI_INDEX
        for image in (amd, arm):
            r = client.get_manifest("library/app", image.digest)
            assert r.status == 200 and r.body == image.manifest
            for digest, data in image.blobs.items():
                blob = client.get_blob("library/app", digest)
                assert blob.status == 200 and blob.body == data
        assert client.get_manifest("library/app", "amd64-only").body == amd.manifest
        # Linked blobs stay per repository on the other side too.
        layer = digest_of(amd.layers[0])
        assert client.get_blob("second", layer).status == 404


def test_upload_started_by_distribution_is_finished_by_ocistore(tmp_path: Path) -> None:
    root = tmp_path / "root"
    rng = random.Random(7)
    chunks = [rng.randbytes(3_000_000), rng.randbytes(1_500_001), rng.randbytes(700_000)]
    data = b"".join(chunks)
    with reference_registry(root, tmp_path) as client:
        location = client.start_upload("team/layer")
        location = client.patch(location, chunks[0])
        location = client.patch(location, chunks[1])
    upload_id = location.split("/blobs/uploads/")[1].split("?")[0]
    upload_dir = root / "docker/registry/v2/repositories/team/layer/_uploads" / upload_id
    offset = len(chunks[0]) + len(chunks[1])
    go_state = (upload_dir / "hashstates/sha256" / str(offset)).read_bytes()
    # distribution's saved state is byte for byte the state ocistore keeps for the same bytes.
    assert go_state == hashing.sha256(chunks[0] + chunks[1]).state()

    repo = Registry(root).repository("team/layer")
    writer = repo.blobs().resume(upload_id)
    assert writer.size == offset
    writer.write(chunks[2])
    desc = writer.commit(digest_of(data))
    assert (
        desc.size == len(data) and str(desc.digest) == "sha256:" + hashlib.sha256(data).hexdigest()
    )
    assert not upload_dir.exists()

    with reference_registry(root, tmp_path) as client:
        blob = client.get_blob("team/layer", digest_of(data))
        assert blob.status == 200 and blob.body == data


def test_a_sha512_blob_distribution_stored_is_served_and_kept(tmp_path: Path) -> None:
    # distribution stores a blob pushed by a sha512 digest under its sha256, with the
    # repository's sha512 link holding "sha256:..." (an alias). ocistore reads such a tree as
    # it is: the blob is served under its sha512 digest, and the collector keeps its bytes.
    from datetime import timedelta

    from ocistore.storage import collect_garbage

    from .servers import ocistore_server

    root = tmp_path / "root"
    layer = random.Random(7).randbytes(50_000)
    layer512 = "sha512:" + hashlib.sha512(layer).hexdigest()
    config = b'{"architecture":"amd64","os":"linux"}'
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": digest_of(config), "size": len(config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": layer512, "size": len(layer)}],
        }
    ).encode()  # fmt: skip
    with reference_registry(root, tmp_path) as client:
        client.push_blob("alg/dist", layer, layer512)
        client.push_blob("alg/dist", config, digest_of(config))
        client.put_manifest("alg/dist", "v1", manifest, OCI_MANIFEST)
    link = root / "docker/registry/v2/repositories/alg/dist/_layers/sha512" / layer512[7:] / "link"
    assert link.read_text() == digest_of(layer)  # distribution's alias
    registry = Registry(root)
    repo = registry.repository("alg/dist")
    assert repo.blobs().get(layer512) == layer
    assert repo.blobs().stat(layer512).digest == layer512
    collect_garbage(registry, min_age=timedelta(0))
    assert registry.blobs().get(digest_of(layer)) == layer  # the bytes the alias names, kept
    for extra in ([], ["--no-native-front"]):
        with ocistore_server(root, extra=extra) as server, server.client() as http:
            got = http.get(f"/v2/alg/dist/blobs/{layer512}")
            assert got.status_code == 200 and got.content == layer
            assert got.headers["docker-content-digest"] == layer512
            part = http.get(f"/v2/alg/dist/blobs/{layer512}", headers={"Range": "bytes=10-19"})
            assert part.status_code == 206 and part.content == layer[10:20]
            # Mounted into another repository by the sha512 digest: an alias there too.
            target = "alg/mounted" + ("-app" if extra else "")
            r = http.post(
                f"/v2/{target}/blobs/uploads/", params={"mount": layer512, "from": "alg/dist"}
            )
            assert r.status_code == 201 and r.headers["docker-content-digest"] == layer512
            assert http.get(f"/v2/{target}/blobs/{layer512}").content == layer


def stored_tree(root: Path, name: str) -> dict[str, bytes]:
    """Every file of the blob store and of the repository's ``_layers``, with its bytes."""
    base = root / "docker/registry/v2"
    return {
        str(path.relative_to(base)): path.read_bytes()
        for part in ("blobs", f"repositories/{name}/_layers")
        for path in sorted((base / part).rglob("*"))
        if path.is_file()
    }


def push_in_chunks(client: Client, name: str, data: bytes, digest: str, query: str = "") -> str:
    """Pushes ``data`` in two pieces; returns the ``Docker-Content-Digest`` answered."""
    location = client.request("POST", f"/v2/{name}/blobs/uploads/{query}")
    assert location.status == 202, location
    path = Client._path(location.headers["location"])
    half = len(data) // 2
    path = client.patch(path, data[:half])
    sep = "&" if "?" in path else "?"
    done = client.request("PUT", f"{path}{sep}digest={digest}", data[half:])
    assert done.status == 201, done
    return done.headers["docker-content-digest"]


def test_a_sha512_blob_is_stored_byte_for_byte_as_distribution_stores_it(tmp_path: Path) -> None:
    # distribution keeps a blob pushed by a sha512 digest under its sha256 and links it under
    # both digests, each link holding "sha256:...". ocistore writes the same tree, whichever
    # way the blob arrives, and each serves the other's.
    from .servers import ocistore_server

    data = random.Random(8).randbytes(300_000)
    digest = "sha512:" + hashlib.sha512(data).hexdigest()
    name = "alg/same"
    reference_root = tmp_path / "reference"
    with reference_registry(reference_root, tmp_path) as client:
        # distribution answers the digest it stored; the spec (and ocistore) the one pushed.
        assert push_in_chunks(client, name, data, digest) == digest_of(data)
    expected = stored_tree(reference_root, name)
    assert expected[f"repositories/{name}/_layers/sha512/{digest[7:]}/link"] == (
        digest_of(data).encode()
    )
    assert set(expected) == {
        f"blobs/sha256/{digest_of(data)[7:9]}/{digest_of(data)[7:]}/data",
        f"repositories/{name}/_layers/sha256/{digest_of(data)[7:]}/link",
        f"repositories/{name}/_layers/sha512/{digest[7:]}/link",
    }

    roots = []
    for i, (extra, query) in enumerate(
        [
            ([], ""),
            ([], "?digest-algorithm=sha512"),  # streamed in sha512, re-hashed in sha256
            (["--no-native-front"], ""),
            (["--no-native-front"], "?digest-algorithm=sha512"),
        ]
    ):
        root = tmp_path / f"http-{i}"
        with ocistore_server(root, extra=extra) as server:
            assert push_in_chunks(Client(server.port), name, data, digest, query) == digest
        roots.append(root)
    writer_root, put_root = tmp_path / "writer", tmp_path / "put"
    writer = Registry(writer_root).repository(name).blobs().create(algorithm="sha512")
    writer.write(data)
    assert str(writer.commit(digest).digest) == digest
    put = Registry(put_root).repository(name).blobs().put(OCTET_STREAM, data, algorithm="sha512")
    assert str(put.digest) == digest and put.size == len(data)
    for root in [*roots, writer_root, put_root]:
        assert stored_tree(root, name) == expected, root
        repo = Registry(root).repository(name)
        assert repo.blobs().get(digest) == data
        assert str(repo.blobs().stat(digest).digest) == digest

    # Each registry serves the other's tree under the sha512 digest.
    with reference_registry(roots[0], tmp_path) as client:
        got = client.get_blob(name, digest)
        assert got.status == 200 and got.body == data
    with ocistore_server(reference_root) as server, server.client() as http:
        got = http.get(f"/v2/{name}/blobs/{digest}")
        assert got.status_code == 200 and got.content == data
        assert got.headers["docker-content-digest"] == digest
