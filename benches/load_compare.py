"""ocistore against the registries people pick today, under load: distribution 3.1.1 and zot.

    python benches/load_compare.py [--zot PATH] [--workers N] [--rounds 3] [--json out.json]
                                   [--plot out.png] [-- <more `ocistore bench compare` options>]

Starts each registry on 127.0.0.1 with a fresh root in its own process group, each without
request logs (``QUIET_LOG``): ocistore
(`ocistore serve`, the native front, ``--workers`` application workers, default serve's),
distribution 3.1.1 (``make peers`` installs it in .peers/registry; OTEL off), and zot when
``--zot`` names a binary built from its source (see docs/performance.md: `storage.commit: true`, so that
it fsyncs as the others do; dedupe and GC off). Then runs `ocistore bench compare` on them with
each server's pid, so that the table has every server's CPU per image operation. The options
after ``--`` go to `ocistore bench compare` (default: its workloads at 8 and 32 clients, 1 and
10 MiB layers, 80 operations each, and 64 clients pulling one fresh 64 MiB image).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from ocistore.server.serve import DEFAULT_WORKERS

from tests.distribution import DISTRIBUTION3, free_port, reference_env, zot_config
from tests.servers import stop

#: Every registry runs without request logs (zot's are below its "warn" level), so that none
#: pays for writing a line per request and the others not.
QUIET_LOG = {"level": "error", "accesslog": {"disabled": True}}


def wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url + "/v2/", timeout=2).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not start:\n{log.read_text()[-2000:]}")


@contextlib.contextmanager
def started(
    name: str, command: list[str], port: int, work: Path, env: dict[str, str] | None = None
) -> Iterator[str]:
    """``NAME=URL,pid=PID`` of a server started in a session of its own, until the block ends."""
    log = work / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, env=env)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc, log)
        yield f"{name}={url},pid={proc.pid}"
    finally:
        stop(proc)


def start_ocistore(servers: contextlib.ExitStack, work: Path, name: str, workers: int) -> str:
    """``ocistore serve`` (the native front, ``workers`` application workers) on a fresh root
    ``work/name``, until ``servers`` closes; ``NAME=URL,pid=PID``."""
    port = free_port()
    config = work / f"{name}.yml"
    config.write_text(yaml.safe_dump({"version": "0.1", "log": QUIET_LOG}))
    command = [
        sys.executable, "-m", "ocistore.cli", "serve", "--config", str(config),
        "--root", str(work / name), "--addr", f"127.0.0.1:{port}", "--workers", str(workers),
        "--delete",
    ]  # fmt: skip
    return servers.enter_context(started(name, command, port, work))


def start_distribution3(servers: contextlib.ExitStack, work: Path) -> str:
    """distribution 3.1.1 on a fresh filesystem root in ``work``, until ``servers`` closes;
    ``NAME=URL,pid=PID``."""
    port = free_port()
    config = {
        "version": "0.1",
        "log": QUIET_LOG,
        "storage": {"filesystem": {"rootdirectory": str(work / "distribution")},
                    "delete": {"enabled": True}},
        "http": {"addr": f"127.0.0.1:{port}"},
    }  # fmt: skip
    (work / "distribution.yml").write_text(yaml.safe_dump(config))
    env = {**reference_env(), "OTEL_TRACES_EXPORTER": "none"}
    command = [str(DISTRIBUTION3), "serve", str(work / "distribution.yml")]
    return servers.enter_context(started("distribution3", command, port, work, env))


def start_zot(servers: contextlib.ExitStack, work: Path, binary: str) -> str:
    """zot (``binary``) on a fresh root in ``work`` as ``zot_config`` has it, until ``servers``
    closes; ``NAME=URL,pid=PID``."""
    port = free_port()
    (work / "zot.json").write_text(json.dumps(zot_config(work / "zot", port)))
    command = [shutil.which(binary) or binary, "serve", str(work / "zot.json")]
    return servers.enter_context(started("zot", command, port, work))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--zot", help="a zot binary (built from its source); omitted: no zot")
    parser.add_argument(
        "--workers", type=int, default=DEFAULT_WORKERS, help="ocistore application workers"
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json")
    parser.add_argument("--plot")
    parser.add_argument("--dir", help="work directory (default: ./.bench-tmp)")
    args, rest = parser.parse_known_args()
    rest = [a for a in rest if a != "--"]
    if not DISTRIBUTION3.is_file():
        raise SystemExit(f"distribution 3 is not at {DISTRIBUTION3}: run `make peers`")
    base = Path(args.dir or ".bench-tmp")
    base.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=base) as tmp, contextlib.ExitStack() as servers:
        work = Path(tmp)
        peers = [
            start_ocistore(servers, work, "ocistore", args.workers),
            start_distribution3(servers, work),
        ]
        if args.zot:
            peers.append(start_zot(servers, work, args.zot))
        command = [sys.executable, "-m", "ocistore.cli", "bench", "compare", *peers,
                   "--rounds", str(args.rounds), *rest]  # fmt: skip
        if args.json:
            command += ["--json", os.path.abspath(args.json)]
        if args.plot:
            command += ["--plot", os.path.abspath(args.plot)]
        return subprocess.run(command).returncode


if __name__ == "__main__":
    sys.exit(main())
