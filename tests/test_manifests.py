from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ocistore import (
    Descriptor,
    Manifest,
    manifest_media_types,
    register_manifest_schema,
    unmarshal_manifest,
)
from ocistore.errors import (
    ErrDescriptorInvalid,
    ErrDigestInvalid,
    ErrManifestInvalid,
    ErrSchemaV1Unsupported,
)
from ocistore.storage import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_INDEX,
    OCI_MANIFEST,
    ImageIndex,
    ImageManifest,
)

from .images import CONFIG, LAYER, descriptor, digest_of, make_image


def test_builtin_media_types() -> None:
    assert {OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST} <= set(
        manifest_media_types()
    )


def test_oci_manifest_keeps_exact_bytes_and_references() -> None:
    image = make_image(1, layers=2, annotations={"org.example": "x"})
    manifest, desc = unmarshal_manifest(OCI_MANIFEST, image.manifest)
    assert isinstance(manifest, ImageManifest)
    assert manifest.payload() == image.manifest
    assert desc == Descriptor(OCI_MANIFEST, digest_of(image.manifest), len(image.manifest))
    assert [str(r.digest) for r in manifest.references()] == [
        digest_of(image.config),
        *(digest_of(layer) for layer in image.layers),
    ]
    assert manifest.annotations == {"org.example": "x"}
    assert manifest.referrer_descriptor().artifact_type == CONFIG


def test_artifact_type_and_subject() -> None:
    subject = make_image(2).manifest
    artifact = make_image(3, artifact_type="application/x.sig", subject=subject)
    manifest, _ = unmarshal_manifest(OCI_MANIFEST, artifact.manifest)
    assert manifest.artifact_type == "application/x.sig"
    assert manifest.subject is not None and str(manifest.subject.digest) == digest_of(subject)
    assert manifest.referrer_descriptor().artifact_type == "application/x.sig"


def test_index_and_manifest_list() -> None:
    a = make_image(4).manifest
    body = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [descriptor(OCI_MANIFEST, a)]}
    index, _ = unmarshal_manifest(OCI_INDEX, json.dumps(body).encode())
    assert isinstance(index, ImageIndex)
    assert [str(d.digest) for d in index.references()] == [digest_of(a)]
    body["mediaType"] = DOCKER_MANIFEST_LIST
    listing, _ = unmarshal_manifest(DOCKER_MANIFEST_LIST, json.dumps(body).encode())
    assert listing.media_type == DOCKER_MANIFEST_LIST


def test_docker_schema2() -> None:
    body = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": descriptor("application/vnd.docker.container.image.v1+json", b"{}"),
        "layers": [descriptor("application/vnd.docker.image.rootfs.diff.tar.gzip", b"l")],
    }
    manifest, desc = unmarshal_manifest(DOCKER_MANIFEST, json.dumps(body).encode())
    assert desc.media_type == DOCKER_MANIFEST and len(manifest.references()) == 2


@pytest.mark.parametrize("content_type", ["", "application/json", None])
def test_media_type_sniffed_from_payload(content_type: str | None) -> None:
    image = make_image(5)
    manifest, _ = unmarshal_manifest(content_type, image.manifest)
    assert manifest.media_type == OCI_MANIFEST
    bare = json.loads(image.manifest)
    del bare["mediaType"]
    manifest, _ = unmarshal_manifest(content_type, json.dumps(bare).encode())
    assert manifest.media_type == OCI_MANIFEST


def test_content_type_parameters_are_ignored() -> None:
    image = make_image(6)
    manifest, _ = unmarshal_manifest(OCI_MANIFEST + "; charset=utf-8", image.manifest)
    assert manifest.media_type == OCI_MANIFEST


@pytest.mark.parametrize(
    "content_type",
    [
        "application/vnd.docker.distribution.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
    ],
)
def test_schema1_is_refused(content_type: str) -> None:
    with pytest.raises(ErrSchemaV1Unsupported):
        unmarshal_manifest(content_type, b'{"schemaVersion": 1}')
    with pytest.raises(ErrSchemaV1Unsupported):
        unmarshal_manifest(None, b'{"schemaVersion": 1, "name": "x", "tag": "y"}')


@pytest.mark.parametrize(
    ("content_type", "payload", "match"),
    [
        ("application/x-unknown", b"{}", "unsupported manifest media type"),
        (OCI_MANIFEST, b"not json", "not valid JSON"),
        (OCI_MANIFEST, b"[]", "JSON object"),
        (OCI_MANIFEST, b'{"schemaVersion": 3, "config": {}}', "schemaVersion"),
        (OCI_MANIFEST, b'{"schemaVersion": 2, "mediaType": "%s"}' % OCI_INDEX.encode(), "sent as"),
        (OCI_MANIFEST, b'{"schemaVersion": 2}', "config is required"),
        (OCI_MANIFEST, b'{"schemaVersion": 2, "config": {"mediaType": "x"}}', "config"),
        (OCI_MANIFEST, json.dumps({"schemaVersion": 2, "config": descriptor(CONFIG, b""),
                                   "layers": {}}).encode(), "layers"),
        (OCI_INDEX, b'{"schemaVersion": 2, "manifests": "x"}', "manifests"),
        (OCI_INDEX, b'{"schemaVersion": 2, "manifests": [{"size": 1}]}', "manifests\\[0\\]"),
        (OCI_MANIFEST, json.dumps({"schemaVersion": 2, "config": descriptor(CONFIG, b""),
                                   "annotations": {"a": 1}}).encode(), "annotations"),
        (None, b'{"schemaVersion": 2}', "cannot tell"),
        (OCI_MANIFEST, b"\xff\xfe", "not valid JSON"),
    ],
)  # fmt: skip
def test_invalid_manifests(content_type: str | None, payload: bytes, match: str) -> None:
    with pytest.raises(ErrManifestInvalid, match=match) as info:
        unmarshal_manifest(content_type, payload)
    assert info.value.code == "MANIFEST_INVALID"


def test_register_a_schema() -> None:
    media_type = "application/vnd.example.manifest.v1+json"

    def unmarshal(mt: str, raw: bytes, doc: Any) -> Manifest:
        return Manifest(media_type=mt, raw=raw, annotations=doc.get("annotations"))

    register_manifest_schema(media_type, unmarshal)
    manifest, desc = unmarshal_manifest(media_type, b'{"annotations": {"k": "v"}}')
    assert manifest.annotations == {"k": "v"} and desc.media_type == media_type
    assert media_type in manifest_media_types()


layers = st.lists(st.binary(max_size=50), max_size=5)


@given(layers, st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3))
def test_any_manifest_round_trips(blobs: list[bytes], annotations: dict[str, str]) -> None:
    body = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(CONFIG, b"{}"),
        "layers": [descriptor(LAYER, b) for b in blobs],
        "annotations": annotations,
    }
    raw = json.dumps(body).encode()
    manifest, desc = unmarshal_manifest(OCI_MANIFEST, raw)
    assert manifest.payload() == raw and str(desc.digest) == digest_of(raw)
    assert [r.to_dict() for r in manifest.references()] == [body["config"], *body["layers"]]


def test_deeply_nested_json_is_an_invalid_manifest() -> None:
    with pytest.raises(ErrManifestInvalid, match="nested too deeply"):
        unmarshal_manifest(OCI_MANIFEST, b"[" * 100_000 + b"]" * 100_000)


def test_a_built_in_schema_cannot_be_replaced() -> None:
    def unmarshal(mt: str, raw: bytes, doc: Any) -> Manifest:
        return Manifest(media_type=mt, raw=raw)

    for media_type in (OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST):
        with pytest.raises(ValueError, match="built-in"):
            register_manifest_schema(media_type, unmarshal)
    image = make_image(7)
    manifest, _ = unmarshal_manifest(OCI_MANIFEST, image.manifest)
    assert isinstance(manifest, ImageManifest)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
descriptor_fields = st.fixed_dictionaries(
    {},
    optional={
        "mediaType": json_values | st.just(LAYER),
        "digest": json_values | st.just(digest_of(b"x")),
        "size": json_values | st.integers(min_value=-1, max_value=2**64),
        "urls": json_values,
        "annotations": json_values,
        "data": json_values | st.just("eA=="),
        "platform": json_values,
    },
)
well_formed_descriptors = st.builds(
    lambda blob, annotations: {**descriptor(LAYER, blob), **annotations},
    st.binary(max_size=8),
    st.sampled_from([{}, {"annotations": {"k": "v"}}, {"urls": ["https://x"]}, {"platform": None}]),
)
descriptor_fields = well_formed_descriptors | descriptor_fields
manifest_documents = st.fixed_dictionaries(
    {},
    optional={
        "schemaVersion": json_values | st.just(2),
        "mediaType": json_values | st.sampled_from([OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST]),
        "config": descriptor_fields | json_values,
        "layers": st.lists(descriptor_fields, max_size=3) | json_values,
        "manifests": st.lists(descriptor_fields, max_size=3) | json_values,
        "subject": descriptor_fields | json_values,
        "annotations": json_values,
        "artifactType": json_values,
    },
)


well_formed_manifests = st.builds(
    lambda config, layers: {"schemaVersion": 2, "config": config, "layers": layers},
    well_formed_descriptors,
    st.lists(well_formed_descriptors, max_size=3),
) | st.builds(
    lambda manifests: {"schemaVersion": 2, "manifests": manifests},
    st.lists(well_formed_descriptors, max_size=3),
)


@given(
    st.sampled_from([None, "", OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST]),
    well_formed_manifests | manifest_documents | json_values,
)
@settings(max_examples=300)
def test_any_json_is_a_manifest_or_a_clear_refusal(content_type: str | None, document: Any) -> None:
    """Hostile manifests: whatever the JSON, the core's parser gives a manifest that references
    exactly the well-formed descriptors it was sent, or one of the registry's refusals (never
    another exception, which the registry would answer with a 500)."""
    payload = json.dumps(document).encode()
    try:
        manifest, desc = unmarshal_manifest(content_type, payload)
    except (ErrManifestInvalid, ErrSchemaV1Unsupported, ErrDescriptorInvalid, ErrDigestInvalid):
        return
    assert manifest.payload() == payload and desc.size == len(payload)
    assert isinstance(document, dict) and document.get("schemaVersion") == 2
    listed = (
        document.get("manifests")
        if isinstance(manifest, ImageIndex)
        else [document["config"], *document.get("layers", [])]
    )
    assert [r.to_dict() for r in manifest.references()] == [
        {k: v for k, v in d.items() if k != "platform" or v is not None} for d in listed
    ]
