from __future__ import annotations

import array
import copy
import hashlib
import itertools
import pickle
import struct
import threading

import blake3 as blake3_reference
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ocistore import hashing
from ocistore.errors import ErrHashStateInvalid

REFERENCE = {
    "sha256": hashlib.sha256,
    "sha512": hashlib.sha512,
    "blake3": blake3_reference.blake3,
}
ALGORITHMS = sorted(REFERENCE)

SHA256_IV = (
    0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A,
    0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19,
)  # fmt: skip

# Recorded from Go 1.26 `crypto/sha256` and `crypto/sha512` MarshalBinary() after writing the
# 100 bytes `bytes(i * 7 % 256 for i in range(100))`.
GO_SHA256_STATE_100 = bytes.fromhex(
    "736861036c69017d0ec50641de6d1abdce75003d11218e34b3c98da12ff25b8982156de4"
    "c0c7ced5dce3eaf1f8ff060d141b222930373e454c535a61686f767d848b9299a0a7aeb5"
    "000000000000000000000000000000000000000000000000000000000000000000000064"
)


def prefix(n: int) -> bytes:
    return bytes(i * 7 % 256 for i in range(n))


def test_hand_built_go_sha256_state_resumes() -> None:
    # Go's layout for a 3-byte prefix: magic, the untouched IV, the 3 bytes zero-padded to a
    # block, and the length; built here by hand from the format, not by ocistore.
    data = prefix(3)
    state = (
        b"sha\x03" + struct.pack(">8I", *SHA256_IV) + data.ljust(64, b"\0") + struct.pack(">Q", 3)
    )
    assert len(state) == 108
    assert hashing.sha256(data).state() == state
    resumed = hashing.sha256.from_state(state)
    resumed.update(b"the rest")
    assert resumed.hexdigest() == hashlib.sha256(data + b"the rest").hexdigest()


def test_go_recorded_state_after_a_full_block() -> None:
    assert len(GO_SHA256_STATE_100) == 108
    assert hashing.sha256(prefix(100)).state() == GO_SHA256_STATE_100
    resumed = hashing.sha256.from_state(GO_SHA256_STATE_100)
    resumed.update(b"more")
    assert resumed.digest() == hashlib.sha256(prefix(100) + b"more").digest()


def test_sha512_state_layout() -> None:
    state = hashing.sha512(prefix(5)).state()
    assert len(state) == 204 and state[:4] == b"sha\x07"
    assert state[68:73] == prefix(5) and struct.unpack(">Q", state[-8:]) == (5,)


@pytest.mark.parametrize("name", ALGORITHMS)
def test_hashlib_shape(name: str) -> None:
    ref = REFERENCE[name](b"abc")
    h = hashing.new(name, b"abc")
    assert h.name == name
    assert h.digest_size == ref.digest_size
    assert h.block_size == ref.block_size
    assert h.digest() == ref.digest() and h.hexdigest() == ref.hexdigest()
    c = h.copy()
    c.update(b"def")
    assert h.hexdigest() == ref.hexdigest()  # the copy is independent
    assert c.hexdigest() == REFERENCE[name](b"abcdef").hexdigest()
    assert h.digest() == h.digest()  # digest() does not finalize
    with pytest.raises(TypeError):
        h.update("text")  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ALGORITHMS)
def test_pickle_carries_only_state(name: str) -> None:
    h = hashing.new(name, prefix(3000))
    blob = pickle.dumps(h)
    # The pickle references the class and carries the state bytes, nothing else.
    assert h.state() in blob
    assert b"cos\nsystem" not in blob and b"builtins" not in blob
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        clone = pickle.loads(pickle.dumps(h, protocol))
        clone.update(b"x")
        assert clone.hexdigest() == REFERENCE[name](prefix(3000) + b"x").hexdigest()
    assert copy.deepcopy(h).hexdigest() == h.hexdigest()


@pytest.mark.parametrize("name", ALGORITHMS)
def test_accepts_any_contiguous_buffer(name: str) -> None:
    ints = array.array("I", range(1000))
    for buf in (ints, memoryview(ints), bytearray(ints.tobytes()), memoryview(ints.tobytes())[10:]):
        expected = REFERENCE[name](bytes(memoryview(buf).cast("B"))).hexdigest()
        assert hashing.new(name, buf).hexdigest() == expected
    with pytest.raises(BufferError):
        hashing.new(name, memoryview(bytes(100))[::2])


@pytest.mark.parametrize("name", ALGORITHMS)
def test_bad_states_are_rejected(name: str) -> None:
    cls = type(hashing.new(name))
    good = hashing.new(name, prefix(2000)).state()
    for bad in (b"", good[:-1], good + b"\0", b"xxxx" + good[4:]):
        with pytest.raises(ErrHashStateInvalid):
            cls.from_state(bad)
    other = "sha512" if name != "sha512" else "sha256"
    with pytest.raises(ErrHashStateInvalid):
        cls.from_state(hashing.new(other).state())


@settings(max_examples=60, deadline=None)
@given(
    name=st.sampled_from(ALGORITHMS),
    data=st.binary(max_size=20_000),
    cuts=st.lists(st.integers(min_value=0, max_value=20_000), max_size=8),
    resume_at=st.sets(st.integers(min_value=0, max_value=8)),
)
def test_any_split_with_state_round_trips(
    name: str, data: bytes, cuts: list[int], resume_at: set[int]
) -> None:
    bounds = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    h = hashing.new(name)
    cls = type(h)
    for i, (a, b) in enumerate(itertools.pairwise(bounds)):
        if i in resume_at:
            h = cls.from_state(h.state())
        h.update(data[a:b])
    assert h.hexdigest() == REFERENCE[name](data).hexdigest()
    assert h.length == len(data)


@pytest.mark.parametrize("name", ALGORITHMS)
def test_large_inputs_match_and_threads_share_nothing(name: str) -> None:
    data = prefix(1 << 16) * 64  # 4 MiB, above the GIL-release threshold
    results: dict[int, str] = {}

    def work(i: int) -> None:
        h = hashing.new(name)
        for _ in range(4):
            h.update(data)
        results[i] = h.hexdigest()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    expected = REFERENCE[name](data * 4).hexdigest()
    assert set(results.values()) == {expected}


def test_update_releases_the_gil() -> None:
    data = bytes(256 << 20)
    ticks = 0
    running = threading.Event()
    stop = threading.Event()

    def count() -> None:
        nonlocal ticks
        running.set()
        while not stop.is_set():
            ticks += 1

    t = threading.Thread(target=count)
    t.start()
    running.wait()
    before = ticks
    hashing.sha256(data)
    during = ticks - before
    stop.set()
    t.join()
    # With the GIL held for the whole update, the counting thread could not run at all.
    assert during > 1000
