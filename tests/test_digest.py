from __future__ import annotations

import hashlib
import pickle
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from ocistore import Digest
from ocistore.errors import (
    ErrDigestInvalid,
    ErrDigestInvalidFormat,
    ErrDigestInvalidLength,
    ErrDigestUnsupported,
)

EMPTY = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
VALID = re.compile(r"^(sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128}|blake3:[0-9a-f]{64})$")


def test_parses_each_algorithm() -> None:
    d = Digest(EMPTY)
    assert (d.algorithm, d.hex, str(d)) == ("sha256", EMPTY[7:], EMPTY)
    assert Digest("sha512:" + "a" * 128).algorithm == "sha512"
    assert Digest("blake3:" + "0" * 64).algorithm == "blake3"


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (EMPTY.upper(), ErrDigestInvalidFormat),
        ("sha256:" + "E3" * 32, ErrDigestInvalidFormat),
        ("sha256:../..", ErrDigestInvalidFormat),
        ("sha256:" + "0" * 63, ErrDigestInvalidLength),
        ("sha256:" + "0" * 65, ErrDigestInvalidLength),
        ("sha512:" + "0" * 64, ErrDigestInvalidLength),
        ("md5:d41d8cd98f00b204e9800998ecf8427e", ErrDigestUnsupported),
        ("sha384:" + "0" * 96, ErrDigestUnsupported),
        ("", ErrDigestInvalidFormat),
        ("sha256", ErrDigestInvalidFormat),
        ("sha256:", ErrDigestInvalidLength),
        ("../sha256:" + "0" * 64, ErrDigestInvalidFormat),
        ("sha256:" + "0" * 62 + "/.", ErrDigestInvalidFormat),
    ],
)
def test_rejects(text: str, error: type[Exception]) -> None:
    with pytest.raises(error) as info:
        Digest(text)
    assert info.value.code == "DIGEST_INVALID"  # type: ignore[attr-defined]
    assert isinstance(info.value, ValueError)


@given(st.text(alphabet="sha2561bl3k:0123456789abcdefABCDEF./", max_size=140))
def test_accepts_exactly_the_grammar(text: str) -> None:
    if VALID.match(text):
        assert str(Digest(text)) == text
    else:
        with pytest.raises(ErrDigestInvalid):
            Digest(text)


@given(st.binary(min_size=32, max_size=32))
def test_from_bytes_matches_hex(raw: bytes) -> None:
    d = Digest.from_bytes("sha256", raw)
    assert d.hex == raw.hex()
    assert Digest(str(d)) == d


def test_equality_hash_and_pickle() -> None:
    d = Digest(EMPTY)
    assert d == EMPTY and d == Digest(EMPTY) and d != "sha256:" + "1" * 64
    assert {d: 1}[EMPTY] == 1 and hash(d) == hash(EMPTY)
    assert pickle.loads(pickle.dumps(d)) == d
    assert Digest.from_bytes("sha256", hashlib.sha256(b"").digest()) == d
    assert sorted([Digest("sha256:" + "b" * 64), d])[0] == "sha256:" + "b" * 64
    with pytest.raises(ValueError):
        Digest.from_bytes("sha256", b"short")
    with pytest.raises(TypeError):
        Digest(42)  # type: ignore[arg-type]
