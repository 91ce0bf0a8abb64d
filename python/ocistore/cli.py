"""The ``ocistore`` command."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING

from . import extras, hashing
from .errors import ErrCollectorBusy, ErrCollectorLeaseLost, OciStoreError
from .progress import ProgressReport
from .server.config import parse_duration
from .storage import DEFAULT_MIN_AGE, Registry, collect_garbage, purge_uploads
from .storage.gc import DEFAULT_LEASE_TTL
from .store import BlobStore

if TYPE_CHECKING:
    from .server.config import Config
    from .storage.driver import FilesystemDriver, ObjectStoreDriver

#: Files at least this large get a progress report.
PROGRESS_MIN = 64 * 1024 * 1024


def _ingest(args: argparse.Namespace) -> int:
    store = BlobStore(args.root)
    for name in args.paths:
        path = Path(name)
        with path.open("rb") as source:
            size = os.fstat(source.fileno()).st_size
            writer = store.create(algorithm=args.algorithm, caching="stream")
            try:
                with ProgressReport(enabled=size >= PROGRESS_MIN) as report:
                    report.phase(path.name, size, "B")
                    writer.read_from(source, progress=report.advance)
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


def _duration(text: str) -> timedelta:
    try:
        return parse_duration(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _serve(args: argparse.Namespace) -> int:
    extras.require(args.server if args.server == "uvicorn" else "server", "ocistore serve")
    from .server.config import ConfigError, load_config
    from .server.serve import serve

    try:
        config = load_config(args.config)
    except ConfigError as e:
        print(f"ocistore: configuration error: {e}", file=sys.stderr)
        return 2
    if args.addr is not None:
        config.addr = args.addr
    if args.root is not None:
        config.root = args.root
    if args.delete is not None:
        config.delete_enabled = args.delete
    if args.native_front is not None:
        config.native_front = args.native_front
    if args.server == "uvicorn" and config.tls_minimum != "tls1.2" and not config.front_in_use():
        # uvicorn takes Python's ssl defaults (TLS 1.2 and later) and has no minimum option
        # (behind the native front, the front speaks TLS).
        print("ocistore: configuration error: http.tls.minimumtls needs --server granian",
              file=sys.stderr)  # fmt: skip
        return 2
    try:
        serve(config, workers=args.workers, server=args.server)
    except ConfigError as e:
        print(f"ocistore: configuration error: {e}", file=sys.stderr)
        return 2
    return 0


def _gc(args: argparse.Namespace) -> int:
    """Exit codes: 0 done, 2 a configuration error, 3 another collector holds the lease (or this
    one lost it)."""
    config: Config | None = None
    storage: str | FilesystemDriver | ObjectStoreDriver = args.root
    if args.config is not None:
        extras.require("config", "--config")
        from .server.config import ConfigError, load_config

        try:
            config = load_config(args.config)
            # ROOT, when given, wins over the configuration's storage (a filesystem tree the
            # configuration's cache and proxy settings apply to).
            storage = args.root if args.root is not None else config.storage_driver()
        except ConfigError as e:
            print(f"ocistore: configuration error: {e}", file=sys.stderr)
            return 2
        # The servers' shared descriptor cache (redis) forgets what is collected.
        registry = Registry(storage, descriptor_cache=config.descriptor_cache())
    elif args.root is not None:
        registry = Registry(storage)
    else:
        print("ocistore: give ROOT or --config", file=sys.stderr)
        return 2
    try:
        with ProgressReport() as report:

            def say(line: str) -> None:
                report.say(line, sys.stderr if args.json else sys.stdout)

            if config is not None:
                _gc_configured(args, config, registry, storage, say)
            result = collect_garbage(
                registry,
                dry_run=args.dry_run,
                delete_untagged=args.delete_untagged,
                min_age=args.min_age,
                wait=args.wait,
                lease_ttl=args.lease_ttl,
                log=say,
                progress=report,
            )
    except (ErrCollectorBusy, ErrCollectorLeaseLost) as e:
        print(f"ocistore: {e}", file=sys.stderr)
        return 3
    if args.json:
        document = {
            "dry_run": args.dry_run,
            "marked": len(result.marked),
            "deleted_blobs": [str(d) for d in result.deleted_blobs],
            "deleted_manifests": [
                {"repository": name, "digest": str(d)} for name, d in result.deleted_manifests
            ],
            "kept_recent": [str(d) for d in result.kept_recent],
            "removed_aliases": result.removed_aliases,
            "unreadable": [
                {"repository": name, "digest": str(d), "error": error}
                for name, d, error in result.unreadable
            ],
        }
        print(json.dumps(document, indent=2))
        return 0
    verb = "would delete" if args.dry_run else "deleted"
    print(
        f"{len(result.marked)} blobs marked, {verb} {len(result.deleted_blobs)} blobs and "
        f"{len(result.deleted_manifests)} manifests; kept {len(result.kept_recent)} "
        f"unreferenced blobs younger than {args.min_age}"
    )
    for name, digest, error in result.unreadable:
        print(f"warning: {name}: manifest {digest} unreadable: {error}", file=sys.stderr)
    return 0


def _gc_configured(
    args: argparse.Namespace,
    config: Config,
    registry: Registry,
    storage: str | FilesystemDriver | ObjectStoreDriver,
    say: Callable[[str], None],
) -> None:
    """What a configuration adds to a collection: a pull-through cache's expiry, and the
    upload purging its ``storage.maintenance.uploadpurging`` asks for."""
    from .proxy.config import UpstreamConfig
    from .proxy.expiry import expire_cache

    upstreams = [UpstreamConfig(**u) for u in config.proxy]
    if upstreams:
        deleting = Registry(
            storage, delete_enabled=True, descriptor_cache=registry.descriptor_cache
        )
        expired = expire_cache(deleting, upstreams, dry_run=args.dry_run, log=say)
        verb = "would expire" if args.dry_run else "expired"
        say(
            f"pull-through cache: {verb} {len(expired.manifests)} manifests and "
            f"{len(expired.blobs)} blob links"
        )
    if config.purge_enabled:
        age = timedelta(seconds=config.purge_age_seconds)
        dry = args.dry_run or config.purge_dry_run
        for upload in purge_uploads(registry, older_than=age, dry_run=dry):
            say(("would purge upload " if dry else "purged upload ") + upload)


def _registry_of(args: argparse.Namespace) -> Registry | None:
    """The registry a command works on: the storage of ``--config`` (S3, Azure, GCS, a filesystem)
    when given, else ``args.root``; None (after saying why) when the configuration is bad."""
    if getattr(args, "config", None) is None:
        if args.root is None:
            print("ocistore: give ROOT or --config", file=sys.stderr)
            return None
        return Registry(args.root)
    extras.require("config", "--config")
    from .server.config import ConfigError, load_config

    try:
        return Registry(load_config(args.config).storage_driver())
    except ConfigError as e:
        print(f"ocistore: configuration error: {e}", file=sys.stderr)
        return None


def _fsck(args: argparse.Namespace) -> int:
    from .storage.fsck import fsck

    registry = _registry_of(args)
    if registry is None:
        return 2
    rate = args.rate_mib * 1024 * 1024 if args.rate_mib else None

    with ProgressReport() as progress:

        def say(problem: object) -> None:
            progress.say(str(problem), sys.stderr if args.json else sys.stdout)

        report = fsck(
            registry, repair=args.repair, jobs=args.jobs, rate_bytes_per_second=rate, log=say,
            progress=progress,
        )  # fmt: skip
    left = sum(1 for p in report.problems if not p.repaired)
    if args.json:
        document = {
            "blobs_checked": report.blobs_checked,
            "bytes_checked": report.bytes_checked,
            "problems": [vars(p) for p in report.problems],
            "clean": report.clean,
        }
        print(json.dumps(document, indent=2))
        return 0 if report.clean else 1
    print(
        f"{report.blobs_checked} blobs ({report.bytes_checked} bytes) checked; "
        f"{len(report.problems)} problems, {left} left"
    )
    return 0 if report.clean else 1


def _purge_uploads(args: argparse.Namespace) -> int:
    removed = purge_uploads(Registry(args.root), older_than=args.older_than, dry_run=args.dry_run)
    for path in removed:
        print(("would remove " if args.dry_run else "removed ") + str(path))
    return 0


def _split_reference(text: str) -> tuple[str, str | None]:
    """``repo[:tag]`` (a ``:`` after the last ``/`` starts the tag) or ``repo@digest``."""
    if "@" in text:
        name, digest = text.split("@", 1)
        return name, digest
    name, sep, tag = text.rpartition(":")
    if sep and "/" not in tag:
        return name, tag
    return text, None


def _import(args: argparse.Namespace) -> int:
    from .bulk import import_image

    repository, tag = _split_reference(args.target)
    registry = _registry_of(args)
    if registry is None:
        return 2
    total = _source_size(Path(args.source))
    with ProgressReport() as report:
        report.phase("import", total, "B")
        result = import_image(
            args.source, repository, tag, registry=registry, jobs=args.jobs,
            progress=report.advance,
        )  # fmt: skip
    print(
        f"{result.repository}{':' + result.tag if result.tag else ''}@{result.digest} "
        f"({result.blobs_ingested} blobs ingested, {result.blobs_skipped} already present)"
    )
    return 0


def _source_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _export(args: argparse.Namespace) -> int:
    from .bulk import export_image

    repository, reference = _split_reference(args.image)
    if reference is None:
        print("ocistore: export needs REPO:TAG or REPO@DIGEST", file=sys.stderr)
        return 2
    with ProgressReport() as report:
        entry = export_image(
            Registry(args.root), repository, reference, args.destination, progress=report
        )
    print(f"{entry.digest}  {args.destination}")
    return 0


def _bench_ingest(args: argparse.Namespace) -> int:
    from .bench import MIB, write_json
    from .bench.ingest import Workspace, ingest_table, measure_ingest, with_rates

    base = Path(args.dir)
    base.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=base, prefix="ocistore-bench-") as tmp:
        print(f"writing a {args.size_mib} MiB source in {base} ...", file=sys.stderr, flush=True)
        workspace = Workspace.create(Path(tmp), args.size_mib * MIB)
        results = with_rates(measure_ingest(workspace, args.repeat))
    print(ingest_table(results))
    if args.json:
        write_json(args.json, {**results, "repeat": args.repeat})
    return 0


def _bench_http(args: argparse.Namespace) -> int:
    extras.require("bench", "ocistore bench http")
    import httpx

    from .bench import MIB, write_json
    from .bench.http import BenchError, connect, http_table, measure

    if (args.username is None) != (args.password is None):
        print("ocistore: --username and --password go together", file=sys.stderr)
        return 2
    try:
        target = connect(args.url, args.repository, args.username, args.password)
        results = measure(target, args.repository, args.size_mib * MIB, args.count, args.time_limit)
    except (BenchError, httpx.HTTPError) as e:
        print(f"ocistore: bench http: {e}", file=sys.stderr)
        return 1
    print(http_table(results))
    if args.json:
        write_json(args.json, {"url": target.url, "repository": args.repository, **results})
    return 0


def _bench_compare(args: argparse.Namespace) -> int:
    extras.require("bench", "ocistore bench compare")
    if args.plot:
        extras.require("plot", "--plot")
    import httpx

    from .bench import MIB, write_json
    from .bench.compare import compare, compare_plot, compare_table, parse_peer
    from .bench.http import BenchError
    from .bench.load import Workload

    report = ProgressReport()
    try:
        peers = [parse_peer(spec) for spec in args.registries]
        workloads = [
            Workload(kind, size * MIB, concurrency)
            for concurrency in args.concurrency
            for size in args.sizes_mib
            for kind in args.kinds
        ]
        document = compare(
            peers,
            rounds=args.rounds,
            workloads=workloads,
            ops=args.ops,
            herd=(args.herd_size_mib * MIB, args.herd_clients) if args.herd_clients else None,
            single=(args.size_mib * MIB, args.count) if args.single else None,
            time_limit=args.time_limit,
            repository=args.repository,
            say=lambda line: report.say(line, sys.stderr),
            progress=report,
        )
    except (BenchError, httpx.HTTPError) as e:
        print(f"ocistore: bench compare: {e}", file=sys.stderr)
        return 1
    finally:
        report.close()
    print(f"medians of {args.rounds} rounds")
    print(compare_table(document))
    if args.json:
        write_json(args.json, document)
    if args.plot and len(peers) > 1:
        compare_plot(document, args.plot)
    return 0


def _numbers(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: whole numbers separated by commas") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: numbers of at least 1")
    return values


def _kinds(text: str) -> list[str]:
    kinds = text.split(",")
    known = ("push", "push-chunked", "pull", "mixed")
    if unknown := [k for k in kinds if k not in known]:
        raise argparse.ArgumentTypeError(f"{', '.join(unknown)}: not one of {', '.join(known)}")
    return kinds


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return value


def _positive_seconds(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number of seconds")
    return value


def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    from .server.serve import DEFAULT_WORKERS

    parser = argparse.ArgumentParser(prog="ocistore", description=__doc__)
    parser.add_argument("--version", action="version", version=f"ocistore {__version__}")
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

    gc = commands.add_parser(
        "gc", help="delete blobs no manifest references (safe while pushes continue)"
    )
    gc.add_argument("root", metavar="ROOT", nargs="?")
    gc.add_argument("--dry-run", action="store_true", help="report, delete nothing")
    gc.add_argument(
        "--config",
        help="the server's configuration: collect its storage (S3, Azure, GCS, a filesystem) "
        "unless ROOT is given; a blob descriptor cache in redis forgets what is collected; "
        "uploads are purged as storage.maintenance.uploadpurging says; for a pull-through "
        "cache (proxy), first expire what its repositories have not used within their ttl",
    )
    gc.add_argument(
        "--json", action="store_true",
        help="print the result as one JSON document (progress lines go to standard error)",
    )  # fmt: skip
    gc.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="wait this long for another collector to finish (default: exit at once, code 3)",
    )
    gc.add_argument(
        "--lease-ttl",
        type=_duration,
        default=DEFAULT_LEASE_TTL,
        help="object storage: how long the collector's lease lasts unrenewed, so how long a "
        "collector that dies holds others off (default 1m)",
    )
    gc.add_argument(
        "--delete-untagged", action="store_true", help="also delete manifests no tag reaches"
    )
    gc.add_argument(
        "--min-age",
        type=_duration,
        default=DEFAULT_MIN_AGE,
        help="keep unreferenced blobs younger than this (default 1h)",
    )
    gc.set_defaults(run=_gc)

    fsck = commands.add_parser("fsck", help="check (and --repair) a storage tree")
    fsck.add_argument("root", metavar="ROOT", nargs="?")
    fsck.add_argument(
        "--config",
        help="a server configuration: check its storage (S3, Azure, GCS) instead of ROOT",
    )
    fsck.add_argument("--repair", action="store_true", help="fix what can be fixed without loss")
    fsck.add_argument(
        "--json", action="store_true",
        help="print the report as one JSON document (progress lines go to standard error)",
    )  # fmt: skip
    fsck.add_argument("--jobs", type=int, help="blobs hashed in parallel (default: one per core)")
    fsck.add_argument("--rate-mib", type=float, help="hash at most this many MiB/s in all")
    fsck.set_defaults(run=_fsck)

    purge = commands.add_parser("purge-uploads", help="remove uploads older than an age")
    purge.add_argument("root", metavar="ROOT")
    purge.add_argument("--older-than", type=_duration, default=timedelta(hours=168))
    purge.add_argument("--dry-run", action="store_true")
    purge.set_defaults(run=_purge_uploads)

    imp = with_root(
        commands.add_parser(
            "import", help="import an OCI layout (dir or tar) or a docker save tarball"
        )
    )
    imp.add_argument("source", metavar="SOURCE")
    imp.add_argument("target", metavar="REPO[:TAG]")
    imp.add_argument(
        "--jobs", type=int, default=None, help="parallel blob ingests (default: four per core)"
    )
    imp.add_argument(
        "--config",
        help="a server configuration: import into its storage (S3, Azure, GCS) instead of --root",
    )
    imp.set_defaults(run=_import)

    exp = with_root(commands.add_parser("export", help="write an image as an OCI image layout"))
    exp.add_argument("image", metavar="REPO:TAG")
    exp.add_argument("destination", metavar="DEST")
    exp.set_defaults(run=_export)

    serve = commands.add_parser("serve", help="run the registry (OCI Distribution API v1.1)")
    serve.add_argument("--config", help="distribution-style config.yml")
    serve.add_argument("--addr", help="HOST:PORT to listen on (default 127.0.0.1:5000)")
    serve.add_argument("--root", help="storage root (default ./data)")
    serve.add_argument(
        "--workers", type=_positive, default=DEFAULT_WORKERS,
        help=f"application worker processes (default {DEFAULT_WORKERS})",
    )  # fmt: skip
    serve.add_argument("--server", choices=["granian", "uvicorn"], default="granian")
    serve.add_argument(
        "--delete",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="allow deletes (storage.delete.enabled; default off)",
    )
    serve.add_argument(
        "--native-front",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="blob reads and upload bodies served by the Rust front, the rest passed to the "
        "application (http.nativefront; default: on for filesystem storage)",
    )
    serve.set_defaults(run=_serve)

    bench = commands.add_parser(
        "bench", help="measure ocistore's ingest on this machine, or any registry over HTTP"
    )
    benches = bench.add_subparsers(dest="bench", required=True)
    ingest_bench = benches.add_parser(
        "ingest",
        help="ocistore's ingest against a naive Python ingest, hashlib and dd on one disk",
        description="(a) ocistore ingest with fsync at commit, (b) a naive Python ingest "
        "(hashlib + write + fsync + rename), (c) hashlib.sha256 alone over the same file, and "
        "dd conv=fsync (the disk's durable write rate): medians of --repeat runs, page cache "
        "written back before each.",
    )
    ingest_bench.add_argument(
        "--size-mib", type=_positive, default=1024, help="source file size (default 1024)"
    )
    ingest_bench.add_argument(
        "--repeat", type=_positive, default=3, help="runs per measurement (default 3)"
    )
    ingest_bench.add_argument(
        "--dir", default=".bench-tmp", help="work directory on the disk to measure "
        "(default ./.bench-tmp; needs about twice --size-mib free)",
    )  # fmt: skip
    ingest_bench.add_argument("--json", metavar="FILE", help="also write the figures here")
    ingest_bench.set_defaults(run=_bench_ingest)

    http_bench = benches.add_parser(
        "http",
        help="push, pull, range and HEAD throughput and latency of a registry at URL",
        description="Against any registry (ocistore, distribution, zot, ...): a random blob "
        "pushed monolithic (POST + PUT) and chunked (8 MiB PATCHes), one full GET, --count "
        "ranged 1 MiB GETs and HEADs (p50, p99), --count 4 KiB blob pushes from 8 threads. "
        "Basic auth, or a bearer token fetched from the registry's token service with the "
        "credentials. The blobs stay in --repository, unreferenced: the registry's garbage "
        "collection removes them.",
    )
    http_bench.add_argument("url", metavar="URL", help="the registry, e.g. http://127.0.0.1:5000")
    http_bench.add_argument(
        "--size-mib", type=_positive, default=256, help="blob size for push and GET (default 256)"
    )
    http_bench.add_argument(
        "--count", type=_positive, default=200,
        help="ranged GETs, HEADs and 4 KiB pushes, each (default 200)",
    )  # fmt: skip
    http_bench.add_argument(
        "--time-limit", type=_positive_seconds, default=60.0, metavar="SECONDS",
        help="stop each series of requests after this long (default 60)",
    )  # fmt: skip
    http_bench.add_argument(
        "--repository", default="ocistore-bench", help="where to push (default ocistore-bench)"
    )
    http_bench.add_argument("--username", help="for basic auth or the token service")
    http_bench.add_argument("--password")
    http_bench.add_argument("--json", metavar="FILE", help="also write the figures here")
    http_bench.set_defaults(run=_bench_http)

    compare_bench = benches.add_parser(
        "compare",
        help="running registries side by side: load workloads and single-client series",
        description="Measures each registry in turn, --rounds times (the order rotated each "
        "round): zot's zb workloads (image pushes monolithic and chunk-streamed, pulls, 75/25 "
        "mixed) at each --concurrency and --sizes-mib, one fresh image pulled by --herd-clients "
        "at once, and with --single the series of `ocistore bench http`. Image operations per "
        "second, p50, p99, time to first byte of pulls, and with ,pid=PID the server's process "
        "group CPU per operation. Prints the medians and the first registry's ratio to the best "
        "other; --json keeps every round.",
    )
    compare_bench.add_argument(
        "registries", nargs="+", metavar="NAME=URL[,pid=PID]",
        help="e.g. ocistore=http://127.0.0.1:5000,pid=1234 zot=http://127.0.0.1:5001",
    )  # fmt: skip
    compare_bench.add_argument("--rounds", type=_positive, default=3)
    compare_bench.add_argument(
        "--kinds", type=_kinds, default=["push", "push-chunked", "pull", "mixed"],
        help="workloads: push, push-chunked, pull, mixed (default all)",
    )  # fmt: skip
    compare_bench.add_argument(
        "--sizes-mib", type=_numbers, default=[1, 10], help="layer sizes (default 1,10)"
    )
    compare_bench.add_argument(
        "--concurrency", type=_numbers, default=[8, 32], help="clients at once (default 8,32)"
    )
    compare_bench.add_argument(
        "--ops", type=_positive, default=80, help="image operations a workload (default 80)"
    )
    compare_bench.add_argument("--herd-size-mib", type=_positive, default=64)
    compare_bench.add_argument(
        "--herd-clients", type=int, default=64, help="0: no thundering herd (default 64)"
    )
    compare_bench.add_argument(
        "--single", action="store_true", help="also the single-client series of `bench http`"
    )
    compare_bench.add_argument("--size-mib", type=_positive, default=256)
    compare_bench.add_argument("--count", type=_positive, default=200)
    compare_bench.add_argument(
        "--time-limit", type=_positive_seconds, default=60.0, metavar="SECONDS",
        help="stop each workload or series after this long (default 60)",
    )  # fmt: skip
    compare_bench.add_argument("--repository", default="ocistore-bench")
    compare_bench.add_argument("--json", metavar="FILE", help="every round and the medians")
    compare_bench.add_argument("--plot", metavar="PNG", help="the ratios (matplotlib)")
    compare_bench.set_defaults(run=_bench_compare)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.run(args)
    except OciStoreError as e:
        print(f"ocistore: {e.code or type(e).__name__}: {e.message}", file=sys.stderr)
        return 1
    except extras.MissingExtra as e:
        print(f"ocistore: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"ocistore: {e}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
