"""benches/durability_floor.py reads an ``strace -f -y`` log of a push and replays its filesystem
calls elsewhere: the parse, what the replay must find in place, and a faithful replay."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benches"))

import durability_floor as floor

# A push as strace -f -y logs it: fds carry their paths, one call interrupted by another thread,
# calls on sockets and epoll that are not the layout's.
LOG = """\
100  mkdir("{R}/a/new", 0777) = 0
100  openat(AT_FDCWD</work>, "{R}/a", O_RDONLY|O_CLOEXEC) = 5<{R}/a>
100  fsync(5<{R}/a>) = 0
100  close(5<{R}/a>) = 0
100  openat(AT_FDCWD</work>, "{R}/a/new/.tmp", O_WRONLY|O_CREAT|O_EXCL|O_CLOEXEC, 0666) = 6<{R}/a/new/.tmp>
100  write(6<{R}/a/new/.tmp>, "sha256:0123"..., 71 <unfinished ...>
101  statx(AT_FDCWD</work>, "{R}/a/missing/x", AT_STATX_SYNC_AS_STAT, STATX_ALL, 0x7f) = -1 ENOENT (No such file or directory)
100  <... write resumed>) = 71
100  fsync(6<{R}/a/new/.tmp>) = 0
100  close(6<{R}/a/new/.tmp>) = 0
100  rename("{R}/a/new/.tmp", "{R}/a/new/link") = 0
100  openat(AT_FDCWD</work>, "{R}/index.json", O_RDONLY|O_CLOEXEC) = 7<{R}/index.json>
100  read(7<{R}/index.json>, "{{}}", 512) = 2
100  close(7<{R}/index.json>) = 0
100  newfstatat(AT_FDCWD</work>, "{R}/blobs/b1", {{st_mode=S_IFREG|0644, st_size=3, ...}}, 0) = 0
100  unlinkat(AT_FDCWD</work>, "{R}/old", 0) = 0
100  epoll_wait(3<anon_inode:[eventpoll]>, [], 1024, 0) = 0
100  write(9<socket:[123]>, "HTTP/1.1 201", 12) = 12
"""


def what_the_push_found(root: Path) -> Path:
    """``root`` with the directories and files the push in LOG found in place."""
    (root / "a").mkdir(parents=True)
    (root / "blobs").mkdir()
    (root / "blobs" / "b1").write_bytes(b"abc")
    (root / "index.json").write_text("{}")
    (root / "old").write_bytes(b"stale")
    return root


def test_the_layouts_calls_are_read_and_the_rest_left_out(tmp_path: Path) -> None:
    root = what_the_push_found(tmp_path / "registry")
    trace = floor.parse_trace(LOG.format(R=root), root)
    names = [call.name for call in trace.calls]
    assert names == [
        "mkdir", "openat", "fsync", "close", "openat", "statx", "write", "fsync", "close",
        "rename", "openat", "read", "close", "newfstatat", "unlinkat",
    ]  # fmt: skip
    # the interrupted write is whole again once resumed
    write = trace.calls[names.index("write")]
    assert write.size == 71 and write.fd == 6 and write.paths[0] == f"{root}/a/new/.tmp"
    assert trace.count("fsync", "fdatasync") == 2
    assert trace.calls[names.index("statx")].result == -1

    dirs, files = floor.needed(trace, root)
    # what the push made itself (a/new, its temp file and link) and what failed is not needed
    assert dirs == {f"{root}/a", f"{root}/blobs"}
    assert files == {f"{root}/index.json", f"{root}/blobs/b1", f"{root}/old"}


def test_a_replay_makes_the_same_calls_with_the_same_outcomes(tmp_path: Path) -> None:
    root = what_the_push_found(tmp_path / "registry")
    trace = floor.parse_trace(LOG.format(R=root), root)
    system_ms, wall_ms, unfaithful = floor.floor_of(trace, root, 2, tmp_path / "scratch")
    assert unfaithful == 0
    assert system_ms >= 0 and wall_ms > 0
    for n in range(2):
        into = tmp_path / "scratch" / f"replay-{n}"
        assert (into / "a" / "new" / "link").stat().st_size == 71
        assert not (into / "a" / "new" / ".tmp").exists()
        assert not (into / "old").exists()
        assert (into / "index.json").read_text() == "{}"
    assert (root / "old").exists(), "the registry's own root is never touched"


def test_a_call_that_turns_out_otherwise_is_counted(tmp_path: Path) -> None:
    root = what_the_push_found(tmp_path / "registry")
    # the trace says the mkdir failed (it existed); replayed where it does not, it succeeds
    log = LOG.replace('"{R}/a/new", 0777) = 0', '"{R}/a/new", 0777) = -1 EEXIST (File exists)')
    trace = floor.parse_trace(log.format(R=root), root)
    assert floor.replay(trace, root, what_the_push_found(tmp_path / "into")) == 1
