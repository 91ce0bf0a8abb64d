from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from ocistore import Descriptor, Digest, Platform
from ocistore.errors import ErrDescriptorInvalid, ErrDigestInvalid

DIGEST = "sha256:" + "ab" * 32

texts = st.text(max_size=20)
platforms = st.fixed_dictionaries(
    {"architecture": texts, "os": texts},
    optional={
        "os.version": texts,
        "os.features": st.lists(texts, max_size=3),
        "variant": texts,
        "features": st.lists(texts, max_size=3),
    },
)
descriptors = st.fixed_dictionaries(
    {
        "mediaType": texts,
        "digest": st.sampled_from([DIGEST, "sha512:" + "0" * 128, "blake3:" + "1f" * 32]),
        "size": st.integers(min_value=0, max_value=2**63 - 1),
    },
    optional={
        "urls": st.lists(texts, max_size=3),
        "annotations": st.dictionaries(texts, texts, max_size=4),
        "data": st.binary(max_size=30).map(lambda b: __import__("base64").b64encode(b).decode()),
        "platform": platforms,
        "artifactType": texts,
    },
)


@given(descriptors)
def test_wire_round_trip_is_exact(d: dict[str, Any]) -> None:
    desc = Descriptor.from_dict(d)
    assert desc.to_dict() == d
    assert json.loads(desc.to_json()) == d
    assert Descriptor.from_json(desc.to_json()) == desc


def test_go_field_order_and_escaping() -> None:
    desc = Descriptor(
        media_type="application/vnd.oci.image.manifest.v1+json",
        digest=Digest(DIGEST),
        size=7,
        annotations={"z": "<&>", "a": "1"},
        platform=Platform(architecture="amd64", os="linux"),
        artifact_type="application/x",
    )
    assert desc.to_json() == (
        b'{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"' + DIGEST.encode()
        + b'","size":7,"annotations":{"a":"1","z":"\\u003c\\u0026\\u003e"},'
        b'"platform":{"architecture":"amd64","os":"linux"},"artifactType":"application/x"}'
    )  # fmt: skip


@pytest.mark.parametrize(
    "bad",
    [
        {"digest": DIGEST, "size": 1},
        {"mediaType": "x", "size": 1},
        {"mediaType": "x", "digest": DIGEST},
        {"mediaType": "x", "digest": DIGEST, "size": -1},
        {"mediaType": "x", "digest": DIGEST, "size": 2**63},  # past Go's int64
        {"mediaType": "x", "digest": DIGEST, "size": 2**64},
        {"mediaType": "x", "digest": DIGEST, "size": "1"},
        {"mediaType": "x", "digest": DIGEST, "size": True},
        {"mediaType": 1, "digest": DIGEST, "size": 1},
        {"mediaType": "x", "digest": DIGEST, "size": 1, "urls": "http://x"},
        {"mediaType": "x", "digest": DIGEST, "size": 1, "annotations": {"a": 1}},
        {"mediaType": "x", "digest": DIGEST, "size": 1, "data": "not base64!"},
        {"mediaType": "x", "digest": DIGEST, "size": 1, "platform": {"os": "linux"}},
        [],
    ],
)
def test_invalid_descriptors(bad: Any) -> None:
    with pytest.raises(ErrDescriptorInvalid):
        Descriptor.from_dict(bad)


def test_bad_digest_in_descriptor() -> None:
    with pytest.raises(ErrDigestInvalid):
        Descriptor.from_dict({"mediaType": "x", "digest": "sha256:zz", "size": 1})
    with pytest.raises(ErrDescriptorInvalid):
        Descriptor.from_json(b"{not json")


def test_deeply_nested_descriptor_json() -> None:
    with pytest.raises(ErrDescriptorInvalid, match="nested too deeply"):
        Descriptor.from_json(b'{"a":' * 50_000 + b"1" + b"}" * 50_000)
