"""The registry's rules as the core owns them (src/layout.rs, src/grammar.rs, src/linked.rs,
src/front/protocol.rs), seen from Python: the same answers the Python copies gave before they
went, the upload claim across processes, the GC lock, and the upload API the Quay adapter uses."""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from ocistore import BlobStore, Registry, _core
from ocistore.errors import (
    ErrBlobUnknown,
    ErrBlobUploadInUse,
    ErrBlobUploadInvalid,
    ErrBlobUploadUnknown,
)

from .conftest import run_python

# The grammars as the Python copies spelled them before the core owned them: the oracle.
COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*")
TAG = re.compile(r"[\w][\w.-]{0,127}", re.ASCII)
UPLOAD_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

name_text = st.text(alphabet="ab09._-/A%", max_size=20)


@given(name_text)
def test_repository_names_as_distribution_spells_them(name: str) -> None:
    expected = bool(name) and len(name) <= 255 and all(map(COMPONENT.fullmatch, name.split("/")))
    assert (_core.repository_name_problem(name) is None) == expected


@given(st.text(alphabet="aZ09_.-/:é", max_size=130))
def test_tags(tag: str) -> None:
    assert _core.valid_tag(tag) == bool(TAG.fullmatch(tag))


@given(st.text(alphabet="0123456789abcdefABC-", min_size=30, max_size=40))
def test_upload_ids(upload_id: str) -> None:
    assert _core.valid_upload_id(upload_id) == bool(UPLOAD_ID.fullmatch(upload_id))


def test_name_problems_say_what_is_wrong() -> None:
    assert _core.repository_name_problem("") == ("empty", "")
    assert _core.repository_name_problem("a" * 256) == ("too_long", "256")
    assert _core.repository_name_problem("ok/Not/x") == ("component", "Not")
    assert _core.repository_name_problem("a//b") == ("component", "")


def test_ranges_pages_and_queries() -> None:
    assert _core.byte_range("bytes=0-9", 100) == (0, 10)
    assert _core.byte_range("bytes=-10", 100) == (90, 10)
    assert _core.byte_range("bytes=100-", 100) == (100, 0)  # unsatisfiable: 416
    assert _core.byte_range("bytes=5-4", 100) is None  # ignored: the whole blob
    assert _core.content_range("bytes 100-199/*") == (100, 199)
    assert _core.upload_continues((10, 14), "5", 10)
    assert not _core.upload_continues((10, 14), "4", 10)
    assert _core.page_size(None) is None and _core.page_size("") is None
    assert _core.page_size("0") == 0
    with pytest.raises(ValueError):
        _core.page_size("-1")
    # A repeated parameter: the first value counts (as Go's FormValue, which distribution uses).
    pairs = _core.query_pairs("digest=sha256%3Aab&mount=a%2Fb+c&digest=other&flag")
    assert pairs == [
        ("digest", "sha256:ab"),
        ("mount", "a/b c"),
        ("digest", "other"),
        ("flag", ""),
    ]
    assert _core.percent_decode("a%2Fb+c%zz") == "a/b+c%zz"


def test_the_layout_is_distributions() -> None:
    d = "sha256:" + "ab" * 32
    layout = _core.Layout
    assert layout.blob_data(d) == f"docker/registry/v2/blobs/sha256/ab/{'ab' * 32}/data"
    repo = "docker/registry/v2/repositories/lib/x"
    assert layout.layer_link("lib/x", d) == f"{repo}/_layers/sha256/{'ab' * 32}/link"
    assert layout.revision_link("lib/x", d) == (
        f"{repo}/_manifests/revisions/sha256/{'ab' * 32}/link"
    )
    assert layout.tag_current_link("lib/x", "v1") == f"{repo}/_manifests/tags/v1/current/link"
    assert layout.tag_index_link("lib/x", "v1", d) == (
        f"{repo}/_manifests/tags/v1/index/sha256/{'ab' * 32}/link"
    )
    assert layout.uploads("lib/x") == f"{repo}/_uploads"
    assert layout.uploads() == "docker/registry/v2/_uploads"
    assert layout.hash_state("sha256", 7) == "hashstates/sha256/7"
    assert layout.gc_lock() == "docker/registry/v2/_ocistore/gc.lock"


def test_a_push_writes_exactly_the_layouts_keys(tmp_path: Path) -> None:
    registry = Registry(tmp_path)
    repo = registry.repository("lib/x")
    descriptor = repo.blobs().put("application/octet-stream", b"layer")
    link = tmp_path / _core.Layout.layer_link("lib/x", descriptor.digest)
    assert link.read_text() == str(descriptor.digest)
    assert (tmp_path / _core.Layout.blob_data(descriptor.digest)).read_bytes() == b"layer"


def test_an_upload_is_claimed_by_one_request_at_a_time(tmp_path: Path) -> None:
    registry = Registry(tmp_path)
    blobs = registry.repository("claimed").blobs()
    writer = blobs.create()
    writer.write(b"abc")
    writer.close()
    first = blobs.claim(writer.id)
    with pytest.raises(ErrBlobUploadInUse) as busy:
        blobs.claim(writer.id)
    assert busy.value.status == 416 and busy.value.detail == {"upload_id": writer.id, "size": 3}
    # Another process is refused too: the claim is a lock on the storage, not in memory.
    code = f"""
import sys
from ocistore import Registry
from ocistore.errors import ErrBlobUploadInUse
try:
    Registry(sys.argv[1]).repository("claimed").blobs().claim({writer.id!r})
except ErrBlobUploadInUse:
    print("in use")
"""
    assert run_python(code, str(tmp_path)).stdout.strip() == "in use"
    first.write(b"def")
    first.close(durable=False)  # closing lets go of it
    second = blobs.claim(writer.id)
    assert second.size == 6
    descriptor = second.commit("sha256:" + hashlib.sha256(b"abcdef").hexdigest())
    assert blobs.get(descriptor.digest) == b"abcdef"  # linked by the one commit call
    with pytest.raises(ErrBlobUploadUnknown):
        blobs.claim(writer.id)
    with pytest.raises(ErrBlobUploadUnknown):
        blobs.claim("../../x")


def test_the_gc_lock_keeps_the_collector_out_while_pushes_hold_it(tmp_path: Path) -> None:
    store = _core.Storage(tmp_path)
    entered = threading.Event()
    with store.gc_lock(), store.gc_lock():  # shared holds coexist

        def collect() -> None:
            with store.gc_lock(True):
                entered.set()

        collector = threading.Thread(target=collect)
        collector.start()
        time.sleep(0.2)
        assert not entered.is_set(), "the exclusive lock waits for the shared holds"
    collector.join(5)
    assert entered.is_set()


def test_linking_needs_a_stored_blob(tmp_path: Path) -> None:
    store = _core.Storage(tmp_path)
    missing = "sha256:" + "0" * 64
    with pytest.raises(ErrBlobUnknown):
        store.link("a", missing)
    assert not store.is_linked("a", missing)
    digest, _ = store.put(b"x")
    store.link("a", digest)
    assert store.is_linked("a", digest) and not store.is_linked("b", digest)


def test_front_records_are_read_by_name() -> None:
    record = {
        "route": "blob",
        "method": "GET",
        "status": 200,
        "seconds": 0.5,
        "bytes_in": 0,
        "bytes_out": 7,
        "path": "/v2/a/blobs/sha256:x",
        "remote": "127.0.0.1",
        "port": 4000,
        "user": None,
    }
    (read,) = _core.read_front_records(json.dumps([record]).encode())
    assert (read.route, read.status, read.bytes_out, read.port, read.user) == (
        "blob",
        200,
        7,
        4000,
        None,
    )
    with pytest.raises(ValueError):
        _core.read_front_records(json.dumps([list(record.values())]).encode())
    front = _core.FrontProtocol
    assert front.OBSERVATIONS_PATH.startswith(front.PATH_PREFIX)
    assert front.AUTHORIZE_PATH.startswith(front.PATH_PREFIX)


def test_an_upload_rewinds_to_a_recorded_state(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    writer = store.create()
    writer.write(b"recorded")
    writer.close()
    size, state = writer.size, writer.hash_state()
    again = store.resume(writer.id)
    again.write(b" and then some")
    again.close()
    rewound = store.rewind(writer.id, size, state)
    assert rewound.size == size
    assert rewound.digest() == "sha256:" + hashlib.sha256(b"recorded").hexdigest()
    rewound.write(b"!")
    rewound.close()
    # A state past what is on disk cannot be rewound to.
    with pytest.raises(ErrBlobUploadInvalid):
        store.rewind(writer.id, 100, _core.sha256(b"x" * 100).state())
    final = store.resume(writer.id)
    assert final.commit("sha256:" + hashlib.sha256(b"recorded!").hexdigest()).size == 9
    # Moving an upload's bytes out of the store, for the Quay adapter's paths.
    moved = store.create()
    moved.write(b"elsewhere")
    moved.move_data_to(tmp_path / "out" / "file")
    assert (tmp_path / "out" / "file").read_bytes() == b"elsewhere"
    with pytest.raises(ErrBlobUploadUnknown):
        store.resume(moved.id)
