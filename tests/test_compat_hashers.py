"""``ocistore.compat.resumablesha256`` and ``ocistore.compat.rehash`` against the packages they
replace and against hashlib, with states round-tripped through pickle."""

from __future__ import annotations

import hashlib
import inspect
import os
import pickle
from typing import Any

import pytest
import rehash as rehash_package
import resumablesha256 as resumablesha256_package
from hypothesis import given, settings
from hypothesis import strategies as st
from ocistore import hashing
from ocistore.compat import rehash, resumablesha256
from ocistore.errors import ErrHashStateInvalid

PROTOCOLS = range(pickle.HIGHEST_PROTOCOL + 1)


@st.composite
def split_data(draw: st.DrawFn) -> tuple[bytes, int]:
    """Data up to a few blocks long (block boundaries are where states differ most) and a
    point to pickle at."""
    data = draw(st.binary(max_size=600))
    return data, draw(st.integers(0, len(data)))


# -- resumablesha256 -------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(split_data())
def test_resumablesha256_pickled_mid_stream_continues(case: tuple[bytes, int]) -> None:
    data, cut = case
    for protocol in PROTOCOLS:
        hasher = resumablesha256.sha256(data[:cut])
        resumed = pickle.loads(pickle.dumps(hasher, protocol))
        assert type(resumed) is resumablesha256.sha256
        resumed.update(data[cut:])
        assert resumed.hexdigest() == hashlib.sha256(data).hexdigest()
        # The allow-listed loader reads the same pickles.
        loaded = resumablesha256.loads(pickle.dumps(hasher, protocol))
        loaded.update(data[cut:])
        assert loaded.digest() == hashlib.sha256(data).digest()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(max_size=200), max_size=6))
def test_resumablesha256_matches_the_original_package(chunks: list[bytes]) -> None:
    ours = resumablesha256.sha256(chunks[0]) if chunks else resumablesha256.sha256()
    theirs = (
        resumablesha256_package.sha256(chunks[0]) if chunks else resumablesha256_package.sha256()
    )
    for chunk in chunks[1:]:
        ours.update(chunk)
        theirs.update(chunk)
    assert ours.hexdigest() == theirs.hexdigest()
    assert ours.digest() == theirs.digest()
    assert ours.copy().hexdigest() == theirs.copy().hexdigest()
    assert (ours.name, ours.digest_size, ours.block_size) == (
        theirs.name,
        theirs.digest_size,
        theirs.block_size,
    )


@settings(max_examples=60, deadline=None)
@given(split_data())
def test_pickles_of_the_original_package_load_and_continue(case: tuple[bytes, int]) -> None:
    data, cut = case
    legacy = resumablesha256_package.sha256(data[:cut])
    for protocol in range(2, pickle.HIGHEST_PROTOCOL + 1):  # the package refuses 0 and 1
        hasher = resumablesha256.loads(pickle.dumps(legacy, protocol))
        assert type(hasher) is hashing.sha256
        assert hasher.length == cut
        hasher.update(data[cut:])
        assert hasher.hexdigest() == hashlib.sha256(data).hexdigest()


def test_legacy_state_after_many_blocks() -> None:
    data = os.urandom(1_000_003)
    legacy = resumablesha256_package.sha256(data[:999_999])
    hasher = resumablesha256.from_legacy_state(legacy.__getstate__())
    hasher.update(data[999_999:])
    assert hasher.hexdigest() == hashlib.sha256(data).hexdigest()


class _Evil:
    def __reduce__(self) -> tuple[Any, ...]:
        return (os.getcwd, ())


@pytest.mark.parametrize(
    "payload",
    [
        pickle.dumps(_Evil()),
        pickle.dumps({"not": "a hasher"}),
        pickle.dumps(hashing.sha512(b"x")),
        pickle.dumps(b"bytes"),
    ],
)
def test_loads_refuses_everything_but_sha256_hashers(payload: bytes) -> None:
    with pytest.raises(pickle.UnpicklingError):
        resumablesha256.loads(payload)


def test_bad_legacy_states_are_refused() -> None:
    good = resumablesha256_package.sha256(b"abc").__getstate__()
    with pytest.raises(ErrHashStateInvalid):
        resumablesha256.from_legacy_state(good[:-1])
    too_many_buffered = good[:64] + (64).to_bytes(4, "little") + good[68:]
    with pytest.raises(ErrHashStateInvalid):
        resumablesha256.from_legacy_state(too_many_buffered)
    partial_block_count = good[:72] + (100).to_bytes(8, "little") + good[80:]
    with pytest.raises(ErrHashStateInvalid):
        resumablesha256.from_legacy_state(partial_block_count)


def test_resumablesha256_constructor() -> None:
    assert resumablesha256.sha256 is hashing.sha256
    assert resumablesha256.sha256().hexdigest() == hashlib.sha256().hexdigest()
    # Like the original: positional data, str refused.
    with pytest.raises(TypeError):
        resumablesha256.sha256("abc")
    with pytest.raises(TypeError):
        resumablesha256_package.sha256("abc")
    # Unlike the original, which ignores keywords (and so hashes nothing): refused.
    assert resumablesha256_package.sha256(data=b"abc").hexdigest() == hashlib.sha256().hexdigest()
    with pytest.raises(TypeError):
        resumablesha256.sha256(data=b"abc")
    # Any buffer, where the original takes bytes only.
    abc = hashlib.sha256(b"abc").hexdigest()
    assert resumablesha256.sha256(bytearray(b"abc")).hexdigest() == abc
    assert resumablesha256.sha256(memoryview(b"xabc")[1:]).hexdigest() == abc


def test_pickles_name_their_class() -> None:
    # Why pickles are not interchangeable between the packages (see the module docstring).
    assert b"ocistore.hashing" in pickle.dumps(resumablesha256.sha256(b"x"))
    assert b"resumablesha256" in pickle.dumps(resumablesha256_package.sha256(b"x"))


# -- rehash ----------------------------------------------------------------------------------


REHASH_ALGORITHMS = ["sha256", "sha512"]


@settings(max_examples=40, deadline=None)
@given(split_data(), st.sampled_from(REHASH_ALGORITHMS))
def test_rehash_pickled_mid_stream_continues(case: tuple[bytes, int], name: str) -> None:
    data, cut = case
    constructor = getattr(rehash, name)
    for hasher in (constructor(data[:cut]), rehash.new(name, data[:cut])):
        for protocol in PROTOCOLS:
            resumed = pickle.loads(pickle.dumps(hasher, protocol))
            resumed.update(data[cut:])
            assert resumed.hexdigest() == hashlib.new(name, data).hexdigest()


@settings(max_examples=40, deadline=None)
@given(split_data(), st.sampled_from(REHASH_ALGORITHMS))
def test_rehash_state_strings_continue(case: tuple[bytes, int], name: str) -> None:
    data, cut = case
    state = rehash.state_string(rehash.new(name, data[:cut]))
    assert isinstance(state, str)
    resumed = getattr(rehash, name)(state=state)
    resumed.update(data[cut:])
    assert resumed.hexdigest() == hashlib.new(name, data).hexdigest()
    # With both, as in rehash: restore, then feed the data.
    fed = rehash.new(name, data[cut:], state=state)
    assert fed.digest() == hashlib.new(name, data).digest()


def test_rehash_names_and_signatures_match_the_package() -> None:
    for name in ("new", "sha256", "sha512", "opaque_repr"):
        assert hasattr(rehash_package, name) and hasattr(rehash, name), name
    package_new = list(inspect.signature(rehash_package.new).parameters)
    assert (
        package_new
        == list(inspect.signature(rehash.new).parameters)
        == [
            "name",
            "data",
            "state",
        ]
    )
    # rehash's named constructors take (data, state) positionally, data under the name "name".
    assert list(inspect.signature(rehash.sha256).parameters) == ["data", "state"]
    assert rehash.sha256(b"abc").hexdigest() == hashlib.sha256(b"abc").hexdigest()
    assert rehash.sha256(data=b"abc").hexdigest() == hashlib.sha256(b"abc").hexdigest()
    assert rehash.new("SHA512", b"abc").hexdigest() == hashlib.sha512(b"abc").hexdigest()
    assert type(rehash.sha256().copy()) is hashing.sha256


@pytest.mark.parametrize("name", ["md5", "sha1", "sha224", "sha384", "nope"])
def test_rehash_unsupported_algorithms_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="unsupported hash type"):
        rehash.new(name)


@pytest.mark.parametrize(
    "state",
    [
        "not base64!",
        "aGVsbG8=",  # base64, not zlib
        rehash.state_string(hashing.sha512(b"x")),  # another algorithm's state
    ],
)
def test_rehash_bad_states_are_refused(state: str) -> None:
    with pytest.raises(ErrHashStateInvalid):
        rehash.sha256(state=state)
    assert issubclass(ErrHashStateInvalid, ValueError)
