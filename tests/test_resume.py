"""Uploads resumed across writers and processes, including after SIGKILL and a failed write."""

from __future__ import annotations

import hashlib
import itertools
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import blake3 as blake3_reference
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ocistore import BlobStore, Descriptor, Digest
from ocistore.store import Caching

from .conftest import pattern, run_python

REFERENCE = {"sha256": hashlib.sha256, "sha512": hashlib.sha512, "blake3": blake3_reference.blake3}


def expected_digest(name: str, data: bytes) -> Digest:
    return Digest(f"{name}:{REFERENCE[name](data).hexdigest()}")


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    name=st.sampled_from(sorted(REFERENCE)),
    data=st.binary(max_size=300_000),
    cuts=st.lists(st.integers(min_value=0, max_value=300_000), max_size=6),
    actions=st.lists(
        st.sampled_from(["none", "close", "checkpoint", "drop"]), min_size=7, max_size=7
    ),
    caching=st.sampled_from(["keep", "stream", "direct"]),
)
def test_chunks_with_close_and_resume_give_hashlib_digest(
    tmp_path_factory: pytest.TempPathFactory,
    name: str,
    data: bytes,
    cuts: list[int],
    actions: list[str],
    caching: Caching,
) -> None:
    store = BlobStore(tmp_path_factory.mktemp("root"))
    bounds = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    w = store.create(algorithm=name, caching=caching)
    for (a, b), action in zip(itertools.pairwise(bounds), actions, strict=False):
        w.write(data[a:b])
        if action == "close":
            w.close()
            w = store.resume(w.id, caching=caching)
        elif action == "checkpoint":
            w.checkpoint()
        elif action == "drop":  # the writer vanishes without a checkpoint, as in a crash
            upload_id = w.id
            del w
            w = store.resume(upload_id, caching=caching)
            if caching != "direct":
                assert w.size == b  # written through the page cache: nothing lost
            else:
                # Direct mode stages up to 8 MiB outside the page cache: a crash loses what
                # was staged, and the upload continues from a prefix of the stream.
                assert w.size <= b
                w.write(data[w.size : b])
        assert w.size == b
    assert w.algorithm == name
    digest = expected_digest(name, data)
    assert w.commit(Descriptor("x", digest, len(data))).digest == digest
    assert store.get(digest) == data


WRITE_PART = """
import sys
from ocistore import BlobStore
root, algorithm, upload_id, start, end, seed, action = sys.argv[1:8]
sys.path.insert(0, {tests!r})
from helpers import pattern
data = pattern(int(end), int(seed))[int(start):]
store = BlobStore(root)
w = store.create(algorithm=algorithm) if upload_id == "-" else store.resume(upload_id)
w.write(data)
if action == "close":
    w.close()
print(w.id)
"""


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    name=st.sampled_from(sorted(REFERENCE)),
    sizes=st.lists(st.integers(min_value=0, max_value=3_000_000), min_size=1, max_size=3),
    actions=st.lists(st.sampled_from(["close", "exit"]), min_size=3, max_size=3),
)
def test_resume_in_other_processes(
    tmp_path_factory: pytest.TempPathFactory, name: str, sizes: list[int], actions: list[str]
) -> None:
    root = str(tmp_path_factory.mktemp("root"))
    code = WRITE_PART.format(tests=str(Path(__file__).parent))
    upload_id, offset, seed = "-", 0, 7
    for size, action in zip(sizes, actions, strict=False):
        end = offset + size
        out = run_python(code, root, name, upload_id, str(offset), str(end), str(seed), action)
        upload_id, offset = out.stdout.strip(), end
    data = pattern(offset, seed)
    w = BlobStore(root).resume(upload_id)
    assert w.size == len(data)
    digest = expected_digest(name, data)
    assert w.commit(digest).size == len(data)
    assert BlobStore(root).get(digest) == data


KILLED_WRITER = """
import sys
from ocistore import BlobStore
sys.path.insert(0, {tests!r})
from helpers import pattern
root = sys.argv[1]
data = pattern(256 * 1024 * 1024, 3)
w = BlobStore(root).create()
print(w.id, flush=True)
step = 1024 * 1024
for i in range(0, len(data), step):
    w.write(data[i:i + step])
    if (i // step) % 16 == 15:
        w.checkpoint()
print("finished", flush=True)
"""


def test_sigkill_mid_write_then_resume(tmp_path: Path) -> None:
    root = tmp_path / "root"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(KILLED_WRITER.format(tests=str(Path(__file__).parent))),
            str(root),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    upload_id = proc.stdout.readline().strip()
    data_file = root / "docker/registry/v2/_uploads" / upload_id / "data"
    deadline = time.monotonic() + 60
    while data_file.stat().st_size < 40 * 1024 * 1024:
        assert time.monotonic() < deadline, "writer made no progress"
        assert proc.poll() is None, "writer ended before it could be killed"
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    full = pattern(256 * 1024 * 1024, 3)
    store = BlobStore(root)
    w = store.resume(upload_id)
    states = list((data_file.parent / "hashstates/sha256").iterdir())
    assert len(states) <= 1 and all(int(s.name) <= w.size for s in states)
    assert 40 * 1024 * 1024 <= w.size < len(full)
    # Whatever reached the file is a prefix of the stream; the rest completes the blob.
    w.write(full[w.size :])
    digest = Digest("sha256:" + hashlib.sha256(full).hexdigest())
    assert w.commit(Descriptor("x", digest, len(full))).size == len(full)
    with store.open(digest) as r:
        assert hashlib.sha256(r.read()).hexdigest() == digest.hex


FAILING_WRITER = """
import resource, signal, sys
from ocistore import BlobStore
from ocistore.errors import ErrBlobUploadInvalid
root = sys.argv[1]
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
w = BlobStore(root).create()
print(w.id, flush=True)
w.write(b"a" * 1000)
w.checkpoint()
# The file may grow no further than 4000 bytes, as on a full disk.
resource.setrlimit(resource.RLIMIT_FSIZE, (4000, 4000))
try:
    w.write(b"b" * 1_000_000)
except OSError as e:
    print("write failed", e.errno, flush=True)
try:
    w.write(b"c")
except ErrBlobUploadInvalid as e:
    print("then refused", e.code, flush=True)
"""


def test_failed_write_loses_nothing_durable(tmp_path: Path) -> None:
    root = tmp_path / "root"
    out = run_python(FAILING_WRITER, str(root)).stdout.splitlines()
    upload_id = out[0]
    assert out[1].startswith("write failed 27")  # EFBIG
    assert out[2] == "then refused BLOB_UPLOAD_INVALID"
    store = BlobStore(root)
    w = store.resume(upload_id)
    # The checkpointed 1000 bytes and whatever part of the failed write reached the file.
    assert 1000 <= w.size <= 4000
    on_disk = (root / "docker/registry/v2/_uploads" / upload_id / "data").read_bytes()
    assert on_disk == b"a" * 1000 + b"b" * (w.size - 1000)
    w.write(b"z")
    expected = hashlib.sha256(on_disk + b"z").hexdigest()
    assert w.commit("sha256:" + expected).size == len(on_disk) + 1


def test_volatile_checkpoint_is_resumed_in_another_process_of_the_same_boot(tmp_path: Path) -> None:
    root = tmp_path / "root"
    data = pattern(3_000_000, 11)
    store = BlobStore(root)
    w = store.create()
    w.write(data[:1_000_000])
    w.checkpoint()
    w.write(data[1_000_000:2_000_000])
    w.close(durable=False)
    upload = root / "docker/registry/v2/_uploads" / w.id
    states = sorted(int(p.name) for p in (upload / "hashstates/sha256").iterdir())
    if not (upload / "ocistore-volatile").exists():
        assert states == [2_000_000]  # no boot id on this machine: the checkpoint was durable
    else:
        assert states == [1_000_000, 2_000_000]  # the durable one is kept for after a restart
    code = f"""
import sys
from ocistore import BlobStore
w = BlobStore({str(root)!r}).resume({w.id!r})
assert w.size == 2_000_000, w.size
sys.path.insert(0, {str(Path(__file__).parent)!r})
from helpers import pattern
w.write(pattern(3_000_000, 11)[2_000_000:])
print(w.commit(w.digest()).digest)
"""
    out = run_python(code).stdout.strip()
    assert out == "sha256:" + hashlib.sha256(data).hexdigest()
