"""The ``ocistore`` command."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from tqdm import tqdm

from . import hashing
from .errors import OciStoreError
from .store import BlobStore

#: Files at least this large get a progress bar (on a terminal).
PROGRESS_MIN = 64 * 1024 * 1024


def _ingest(args: argparse.Namespace) -> int:
    store = BlobStore(args.root)
    for name in args.paths:
        path = Path(name)
        with path.open("rb") as source:
            size = os.fstat(source.fileno()).st_size
            writer = store.create(algorithm=args.algorithm)
            try:
                with tqdm(
                    total=size,
                    unit="B",
                    unit_scale=True,
                    unit_divisor=1024,
                    desc=path.name,
                    disable=None if size >= PROGRESS_MIN else True,
                    file=sys.stderr,
                ) as bar:
                    writer.read_from(source, progress=bar.update)
                descriptor = writer.commit(writer.digest())
            except BaseException:
                writer.cancel()
                raise
        print(f"{descriptor.digest}  {name}", flush=True)
    return 0


def _cat(args: argparse.Namespace) -> int:
    store = BlobStore(args.root)
    with store.open(args.digest) as reader:
        shutil.copyfileobj(reader, sys.stdout.buffer, 1024 * 1024)
    sys.stdout.buffer.flush()
    return 0


def _stat(args: argparse.Namespace) -> int:
    descriptor = BlobStore(args.root).stat(args.digest)
    print(json.dumps(descriptor.to_dict(), indent=2))
    return 0


def _hash(args: argparse.Namespace) -> int:
    hasher = hashing.new(args.algorithm)
    source: IO[bytes] = sys.stdin.buffer if args.file == "-" else open(args.file, "rb")  # noqa: SIM115
    with source:
        while chunk := source.read(1024 * 1024):
            hasher.update(chunk)
    print(f"{args.algorithm}:{hasher.hexdigest()}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ocistore", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    def with_root(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--root", default="./data", help="storage root (default: ./data)")
        return p

    algorithms = sorted(hashing.algorithms_available)
    ingest = with_root(commands.add_parser("ingest", help="store files as blobs, print digests"))
    ingest.add_argument("paths", nargs="+", metavar="PATH")
    ingest.add_argument("--algorithm", "--alg", default="sha256", choices=algorithms)
    ingest.set_defaults(run=_ingest)

    cat = with_root(commands.add_parser("cat", help="write a blob to standard output"))
    cat.add_argument("digest")
    cat.set_defaults(run=_cat)

    stat = with_root(commands.add_parser("stat", help="print a blob's descriptor as JSON"))
    stat.add_argument("digest")
    stat.set_defaults(run=_stat)

    hash_ = commands.add_parser("hash", help="print a file's digest ('-' for standard input)")
    hash_.add_argument("file")
    hash_.add_argument("--algorithm", "--alg", default="sha256", choices=algorithms)
    hash_.set_defaults(run=_hash)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.run(args)
    except OciStoreError as e:
        print(f"ocistore: {e.code or type(e).__name__}: {e.message}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"ocistore: {e}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
