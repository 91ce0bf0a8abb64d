"""What a durable image push costs the kernel on this machine: each registry's own filesystem
calls for one push, traced, then replayed without the registry.

    python benches/durability_floor.py [--zot PATH] [--pushes 200] [--replays 40] [--rounds 3]
                                       [--json out.json]

Starts ocistore, distribution 3.1.1 and, with ``--zot``, zot (``storage.commit: true``) on
fresh roots, as benches/load_compare.py does. For each:

- ``--pushes`` images (a 1 MiB layer, a small config, a manifest under a new tag: zb's "Push
  Monolith 1MB", five requests) are pushed one after another into one repository over one
  connection, and the server's CPU per push is read from its process group (user and system);
- one more push is traced with ``strace -f`` and its filesystem calls on the registry's root
  (mkdir, open, read, write, fsync, fdatasync, rename, unlink, utimensat, flock, stat) are
  replayed ``--replays`` times, each in a fresh copy of the directories the push found in
  place, by this process alone. The system CPU of a replay (``ru_stime``) is what the
  registry's layout and its durability cost the kernel for one push: no code above those
  calls can spend less.

Rounds alternate the registries' order; medians at the end, every round in ``--json``. Also
printed: how many fsyncs, mkdirs and renames a push makes, and SHA-256 of the push's
bytes in this process, the other cost every verifying registry pays. Needs ``strace``.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from load_compare import start_distribution3, start_ocistore, start_zot
from ocistore.bench.load import process_group_cpu_split

LAYER = 1024 * 1024
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
TRACED = "trace=%file,%desc,fsync,fdatasync"
# The calls replayed; the others a trace holds (epoll, sockets, mmap) are not the layout's.
REPLAYED = {
    "mkdir", "mkdirat", "openat", "open", "write", "pwrite64", "read", "pread64", "fsync",
    "fdatasync", "close", "rename", "renameat", "renameat2", "unlink", "unlinkat", "rmdir",
    "utimensat", "flock", "statx", "newfstatat", "stat", "lstat", "fstat", "getdents64",
}  # fmt: skip

# One strace line: pid, call, arguments, result (strace -f -y: fds carry their path, fd<path>).
CALL = re.compile(r"^(\d+)\s+(\w+)\((.*)\)\s+=\s+(-?\d+)(?:<([^>]*)>)?(?:\s+(\w+))?")
QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')
FD = re.compile(r"(-?\d+|AT_FDCWD)<([^>]*)>")


class Registry:
    """A running registry: its URL, its process group's leader and its storage root."""

    def __init__(self, spec: str, root: Path) -> None:
        name, rest = spec.split("=", 1)
        url, pid = rest.split(",pid=")
        self.name, self.url, self.pid, self.root = name, url, int(pid), root.resolve()


def push(client: httpx.Client, repository: str, index: int) -> None:
    """One image, as zb's Push Monolith pushes it."""

    def blob(data: bytes) -> dict[str, str | int]:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        location = client.post(f"/v2/{repository}/blobs/uploads/").headers["location"]
        separator = "&" if "?" in location else "?"
        headers = {"content-type": "application/octet-stream"}
        r = client.put(f"{location}{separator}digest={digest}", content=data, headers=headers)
        if r.status_code != 201:
            raise RuntimeError(f"{client.base_url}: blob PUT {r.status_code} {r.text[:200]}")
        return {"digest": digest, "size": len(data)}

    config = blob(json.dumps({"architecture": "amd64", "os": "linux", "n": index}).encode())
    layer = blob(os.urandom(LAYER))
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", **layer}],
    }).encode()  # fmt: skip
    r = client.put(f"/v2/{repository}/manifests/t{index}", content=manifest,
                   headers={"content-type": MANIFEST})  # fmt: skip
    if r.status_code != 201:
        raise RuntimeError(f"{client.base_url}: manifest PUT {r.status_code} {r.text[:200]}")


@dataclass
class Call:
    name: str
    paths: list[str]  # the paths named, in argument order (fd<path> or "path")
    fd: int | None  # the fd argument (first), if any
    size: int  # bytes of a write or read
    flags: str
    result: int
    result_path: str | None  # openat's new fd's path


@dataclass
class Trace:
    calls: list[Call] = field(default_factory=list)

    def count(self, *names: str) -> int:
        return sum(1 for c in self.calls if c.name in names)


def parse_trace(text: str, root: Path) -> Trace:
    """The calls of an ``strace -f -y`` log that touch files under ``root``."""
    pending: dict[str, str] = {}
    trace = Trace()
    prefix = str(root)
    for raw in text.splitlines():
        line = raw.rstrip()
        if line.endswith("<unfinished ...>"):
            pid = line.split(None, 1)[0]
            pending[pid] = line[: -len("<unfinished ...>")].rstrip()
            continue
        resumed = re.match(r"^(\d+)\s+<\.\.\. \w+ resumed>(.*)$", line)
        if resumed:
            start = pending.pop(resumed.group(1), None)
            if start is None:
                continue
            line = start + resumed.group(2)
        match = CALL.match(line)
        if not match:
            continue
        _, name, args, result, result_path, _ = match.groups()
        if name not in REPLAYED:
            continue
        paths = [m.group(2) for m in FD.finditer(args)]
        paths += [bytes(q, "utf-8").decode("unicode_escape") for q in QUOTED.findall(args)]
        under = [p for p in paths if p.startswith(prefix)]
        if not under and not (result_path or "").startswith(prefix):
            continue
        first = FD.match(args)
        fd = int(first.group(1)) if first and first.group(1) != "AT_FDCWD" else None
        size = int(result) if name in ("write", "pwrite64", "read", "pread64") else 0
        flags = " ".join(re.findall(r"\b[A-Z_]{3,}\b", args))
        trace.calls.append(Call(name, paths, fd, size, flags, int(result), result_path))
    return trace


def needed(trace: Trace, root: Path) -> tuple[set[str], set[str]]:
    """Directories and files under ``root`` the push found in place: named by a call that
    succeeded, not made by an earlier call of the push."""
    prefix = str(root)
    made: set[str] = set()
    dirs: set[str] = set()
    files: set[str] = set()

    def ancestors(path: str) -> None:
        parent = os.path.dirname(path)
        while parent.startswith(prefix) and parent not in made and parent != prefix:
            dirs.add(parent)
            parent = os.path.dirname(parent)

    for call in trace.calls:
        named = [p for p in call.paths if p.startswith(prefix)]
        if call.result < 0:
            continue  # which of its directories existed is unknown: none is made for it
        if call.name in ("mkdir", "mkdirat"):
            ancestors(named[-1])
            made.add(named[-1])
        elif call.name in ("openat", "open"):
            path = call.result_path or named[-1]
            ancestors(path)
            if path not in made:
                if "O_CREAT" in call.flags:
                    made.add(path)
                elif "O_DIRECTORY" in call.flags or os.path.isdir(path):
                    dirs.add(path)
                else:
                    files.add(path)
        elif call.name in ("rename", "renameat", "renameat2"):
            for path in named:
                ancestors(path)
            if named and named[0] not in made:
                files.add(named[0])
            made.add(named[-1])
        elif call.name in ("unlink", "unlinkat", "rmdir"):
            path = joined(call)
            ancestors(path)
            if path not in made:
                (dirs if "AT_REMOVEDIR" in call.flags or call.name == "rmdir" else files).add(path)
        else:
            for path in named:
                ancestors(path)
            looked_at = call.name in ("statx", "newfstatat", "stat", "lstat") and named
            if looked_at and named[-1] not in made and "AT_EMPTY_PATH" not in call.flags:
                (dirs if "S_IFDIR" in call.flags else files).add(named[-1])
    return dirs - files, files


def joined(call: Call) -> str:
    """The path an ``unlinkat(dirfd<dir>, "name")`` names."""
    if len(call.paths) == 2 and not call.paths[1].startswith("/"):
        return os.path.join(call.paths[0], call.paths[1])
    return call.paths[-1]


def replay(trace: Trace, root: Path, into: Path) -> int:
    """Makes ``trace``'s calls again with ``root`` moved to ``into``; returns how many had a
    different outcome than in the trace (0 when the replay is faithful)."""
    prefix = str(root)

    def moved(path: str) -> str:
        return str(into) + path[len(prefix) :] if path.startswith(prefix) else path

    fds: dict[int, int] = {}
    differ = 0
    zeros = bytes(LAYER)
    for call in trace.calls:
        ok = True
        try:
            name = call.name
            if name in ("mkdir", "mkdirat"):
                os.mkdir(moved(call.paths[-1]))
            elif name in ("openat", "open"):
                flags = 0
                for flag in call.flags.split():
                    flags |= getattr(os, flag, 0) if flag.startswith("O_") else 0
                fd = os.open(moved(call.result_path or call.paths[-1]), flags, 0o666)
                fds[call.result] = fd
            elif name in ("write", "pwrite64") and call.fd in fds:
                os.write(fds[call.fd], zeros[: call.size])
            elif name in ("read", "pread64") and call.fd in fds:
                os.read(fds[call.fd], max(call.size, 1))
            elif name == "fsync" and call.fd in fds:
                os.fsync(fds[call.fd])
            elif name == "fdatasync" and call.fd in fds:
                os.fdatasync(fds[call.fd])
            elif name == "close" and call.fd in fds:
                os.close(fds.pop(call.fd))
            elif name in ("rename", "renameat", "renameat2"):
                os.rename(moved(call.paths[-2]), moved(call.paths[-1]))
            elif name in ("unlink", "unlinkat", "rmdir"):
                target = moved(joined(call))
                if "AT_REMOVEDIR" in call.flags or name == "rmdir":
                    os.rmdir(target)
                else:
                    os.unlink(target)
            elif name == "utimensat" and call.fd in fds:
                os.utime(fds[call.fd])
            elif name == "flock" and call.fd in fds:
                fcntl.flock(fds[call.fd], fcntl.LOCK_UN if "LOCK_UN" in call.flags else
                            fcntl.LOCK_SH if "LOCK_SH" in call.flags else fcntl.LOCK_EX)  # fmt: skip
            elif "AT_EMPTY_PATH" in call.flags or name == "fstat":
                if call.fd in fds:
                    os.fstat(fds[call.fd])
            elif name in ("statx", "newfstatat", "stat", "lstat") and call.paths:
                os.stat(moved(call.paths[-1]))
            elif name == "getdents64" and call.fd in fds:
                os.listdir(moved(call.paths[0]))
        except OSError:
            ok = False
        if ok != (call.result >= 0):
            differ += 1
    for fd in fds.values():
        os.close(fd)
    return differ


def floor_of(trace: Trace, root: Path, replays: int, scratch: Path) -> tuple[float, float, int]:
    """Mean system CPU and median wall ms of a replay of ``trace``, and its unfaithful calls.
    (The kernel accounts system time in ticks: only a sum over many replays is exact.)"""
    dirs, files = needed(trace, root)
    places = []
    for n in range(replays):
        into = scratch / f"replay-{n}"
        for d in sorted(dirs):
            os.makedirs(str(into) + d[len(str(root)) :], exist_ok=True)
        for f in files:
            target = Path(str(into) + f[len(str(root)) :])
            target.parent.mkdir(parents=True, exist_ok=True)
            source = Path(f)
            size = source.stat().st_size if source.is_file() else 0
            if size <= 65536:
                target.write_bytes(source.read_bytes() if size else b"")
            else:  # a blob the push only looks at: its size, not its bytes
                target.touch()
                os.truncate(target, size)
        places.append(into)
    os.sync()
    system, wall, differ = [], [], 0
    for into in places:
        before, started = resource.getrusage(resource.RUSAGE_SELF).ru_stime, time.perf_counter()
        differ = max(differ, replay(trace, root, into))
        wall.append((time.perf_counter() - started) * 1e3)
        system.append((resource.getrusage(resource.RUSAGE_SELF).ru_stime - before) * 1e3)
    return sum(system) / len(system), statistics.median(wall), differ


def measure(
    registry: Registry, pushes: int, replays: int, scratch: Path, first: int
) -> dict[str, float]:
    """One round: ``pushes`` pushes timed, one traced and replayed; tags from ``first`` on."""
    with httpx.Client(base_url=registry.url, timeout=60) as client:
        push(client, "floor/app", first)
        user0, system0 = process_group_cpu_split(registry.pid)
        started = time.perf_counter()
        for n in range(first + 1, first + pushes + 1):
            push(client, "floor/app", n)
        elapsed = time.perf_counter() - started
        user1, system1 = process_group_cpu_split(registry.pid)
        group = subprocess.check_output(["pgrep", "-g", str(os.getpgid(registry.pid))]).split()
        log = scratch / f"{registry.name}.strace"
        attach = [a for pid in group for a in ("-p", pid.decode())]
        tracer = subprocess.Popen(["strace", "-f", "-qq", "-y", "-e", TRACED, "-o", str(log),
                                   *attach], stderr=subprocess.DEVNULL)  # fmt: skip
        time.sleep(2)  # strace attaches to every thread
        push(client, "floor/app", first + pushes + 1)
        time.sleep(1)
        tracer.terminate()
        tracer.wait()
    trace = parse_trace(log.read_text(errors="replace"), registry.root)
    # Replays are kept until the end: deleting thousands of inodes now would make every inode
    # the next registry allocates dearer (ext4 without a journal skips inodes freed in the last
    # 30 s).
    system, wall, differ = floor_of(
        trace, registry.root, replays, scratch / f"{registry.name}-{first}"
    )
    return {
        "pushes_per_s": pushes / elapsed,
        "server_user_ms": (user1 - user0) * 1e3 / pushes,
        "server_system_ms": (system1 - system0) * 1e3 / pushes,
        "fsyncs": trace.count("fsync", "fdatasync"),
        "mkdirs": trace.count("mkdir", "mkdirat"),
        "renames": trace.count("rename", "renameat", "renameat2"),
        "opens": trace.count("openat", "open"),
        "replay_system_ms": system,
        "replay_wall_ms": wall,
        "replay_unfaithful_calls": differ,
    }


def sha256_ms(size: int) -> float:
    data = os.urandom(size)
    times = []
    for _ in range(20):
        started = time.thread_time()
        hashlib.sha256(data).digest()
        times.append((time.thread_time() - started) * 1e3)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--zot", help="a zot binary (built from its source); omitted: no zot")
    parser.add_argument("--pushes", type=int, default=200)
    parser.add_argument("--replays", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", help="every round and the medians, as JSON")
    args = parser.parse_args()
    if shutil.which("strace") is None:
        parser.error("needs strace (apt-get install strace)")
    rounds: dict[str, list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(dir=Path.cwd() / ".bench-tmp") as tmp, \
            contextlib.ExitStack() as servers:  # fmt: skip
        work = Path(tmp)
        registries = [Registry(start_ocistore(servers, work, "ocistore", 2), work / "ocistore"),
                      Registry(start_distribution3(servers, work), work / "distribution")]  # fmt: skip
        if args.zot:
            registries.append(Registry(start_zot(servers, work, args.zot), work / "zot"))
        for n in range(args.rounds):
            for registry in registries[n % len(registries) :] + registries[: n % len(registries)]:
                first = n * (args.pushes + 2)
                figures = measure(registry, args.pushes, args.replays, work, first)
                rounds.setdefault(registry.name, []).append(figures)
                print(f"round {n + 1}", registry.name, json.dumps(figures), flush=True)
    medians = {
        name: {key: statistics.median(r[key] for r in each) for key in each[0]}
        for name, each in rounds.items()
    }
    hashing = sha256_ms(LAYER)
    print(f"\nper image push (1 MiB layer), {args.pushes} pushes in a row, {args.replays} replays, "
          f"medians of {args.rounds} rounds; SHA-256 of 1 MiB here: {hashing:.2f} ms CPU")  # fmt: skip
    header = f"{'':14}{'server user':>12}{'system':>8}{'pushes/s':>9}{'fsyncs':>7}{'mkdirs':>7}"
    print(header + f"{'renames':>8}{'replayed fs: system':>21}{'wall':>7}")
    for name, r in medians.items():
        print(f"{name:14}{r['server_user_ms']:10.2f}ms{r['server_system_ms']:6.2f}ms"
              f"{r['pushes_per_s']:9.1f}{r['fsyncs']:7.0f}{r['mkdirs']:7.0f}{r['renames']:8.0f}"
              f"{r['replay_system_ms']:19.2f}ms{r['replay_wall_ms']:5.1f}ms"
              + (f"  ({r['replay_unfaithful_calls']:.0f} calls replayed unlike the trace)"
                 if r["replay_unfaithful_calls"] else ""))  # fmt: skip
    if args.json:
        document = {"sha256_1mib_ms": hashing, "medians": medians, "rounds": rounds}
        Path(args.json).write_text(json.dumps(document, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
