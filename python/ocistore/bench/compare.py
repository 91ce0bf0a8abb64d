"""Registries side by side: ``ocistore bench compare NAME=URL[,pid=PID] ...``.

Every round measures every registry in turn (the order rotated each round, so that a drift of
the machine touches all of them), with the same client: the single-client series of
:mod:`ocistore.bench.http` and the load workloads of :mod:`ocistore.bench.load`. Given a
registry's server pid, its process group's CPU is read from ``/proc`` around each measurement.
The result keeps every round; the table and the plot show the medians of the rounds, and the
first registry's ratio to the best of the others.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ..progress import ProgressSink
from . import MIB, format_table
from .http import BenchError, connect, measure
from .load import Workload, process_group_cpu_seconds, run_workload, thundering_herd

__all__ = ["Peer", "compare", "compare_plot", "compare_table", "parse_peer"]


@dataclass(frozen=True)
class Peer:
    name: str
    url: str
    pid: int | None = None


def parse_peer(spec: str) -> Peer:
    """``NAME=URL`` or ``NAME=URL,pid=PID``."""
    name, sep, rest = spec.partition("=")
    if not sep or not name or not rest:
        raise BenchError(f"{spec!r}: give a registry as NAME=URL or NAME=URL,pid=PID")
    url, _, options = rest.partition(",")
    pid = None
    if options:
        key, _, value = options.partition("=")
        if key != "pid" or not value.isdigit():
            raise BenchError(f"{spec!r}: after the URL only ,pid=PID may follow")
        pid = int(value)
        try:
            process_group_cpu_seconds(pid)
        except (OSError, ValueError) as e:
            raise BenchError(f"{spec!r}: no process {pid} to measure ({e})") from None
    return Peer(name, url, pid)


def lower_is_better(key: str) -> bool:
    """Whether less is better for a figure: times, latencies, CPU, memory growth (rates are
    better higher)."""
    if key.endswith(("_per_s", "_mibps")):
        return False
    return key.endswith(("_ms", "_s", "cpu_ms_per_op", "_per_gib", "_growth_mib"))


def compare(
    peers: Sequence[Peer],
    *,
    rounds: int = 3,
    workloads: Sequence[Workload] = (),
    ops: int = 80,
    herd: tuple[int, int] | None = None,
    single: tuple[int, int] | None = None,
    time_limit: float = 60.0,
    repository: str = "ocistore-bench",
    say: Callable[[str], object] = lambda _: None,
    progress: ProgressSink | None = None,
    extra: Callable[[Peer], Mapping[str, float]] | None = None,
) -> dict[str, Any]:
    """Measures each of ``peers`` ``rounds`` times: ``single`` (blob size, count) the
    single-client series, each of ``workloads`` with ``ops`` image operations, ``herd``
    (image size, clients) pulling one fresh image at once, then ``extra`` (the caller's own
    measurements of a registry, such as other clients than this one). Returns every round and
    the medians; each measurement done advances ``progress``."""
    if len({p.name for p in peers}) != len(peers):
        raise BenchError("give each registry its own name")
    targets = {p.name: connect(p.url, repository) for p in peers}
    runs: dict[str, list[dict[str, float]]] = {p.name: [] for p in peers}
    steps = len(workloads) + (herd is not None) + (single is not None) + (extra is not None)
    if progress is not None:
        progress.phase("bench compare", rounds * len(peers) * steps, "measurements")

    def done() -> None:
        if progress is not None:
            progress.advance()

    for round_ in range(rounds):
        shift = round_ % len(peers)
        for peer in [*peers[shift:], *peers[:shift]]:
            say(f"round {round_ + 1} of {rounds}: {peer.name}")
            target = targets[peer.name]
            figures: dict[str, float] = {}

            if single is not None:
                pid = peer.pid
                before = process_group_cpu_seconds(pid) if pid is not None else None
                started = time.perf_counter()
                size, count = single
                figures.update(measure(target, repository, size, count, time_limit))
                if pid is not None and before is not None:
                    figures["single_cpu_s"] = process_group_cpu_seconds(pid) - before
                figures["single_s"] = time.perf_counter() - started
                done()
            for workload in workloads:
                result = run_workload(
                    target, f"{repository}-load", workload, ops, time_limit, peer.pid
                )
                for key, value in result.figures().items():
                    figures[f"{workload.name}: {key}"] = value
                say(f"  {workload.name}: {result.figures()['ops_per_s']:.1f} image ops/s")
                done()
            if herd is not None:
                size, clients = herd
                result = thundering_herd(target, f"{repository}-herd", size, clients, peer.pid)
                name = f"herd {size // MIB} MiB x{clients}"
                for key, value in result.figures().items():
                    figures[f"{name}: {key}"] = value
                done()
            if extra is not None:
                figures.update(extra(peer))
                done()
            runs[peer.name].append(figures)
    medians = {
        name: {key: statistics.median(r[key] for r in rows if key in r) for key in rows[0]}
        for name, rows in runs.items()
        if rows
    }
    return {
        "peers": [asdict(p) for p in peers],
        "rounds": runs,
        "medians": medians,
        "workloads": [asdict(w) for w in workloads],
        "ops": ops,
    }


def _ratios(document: dict[str, Any]) -> dict[str, float | None]:
    """For each figure: the first registry's value over the best of the others' (for figures
    where less is better, the best is the least)."""
    medians: dict[str, dict[str, float]] = document["medians"]
    names = [p["name"] for p in document["peers"]]
    first, others = names[0], names[1:]
    ratios: dict[str, float | None] = {}
    for key, value in medians[first].items():
        values = [medians[o][key] for o in others if medians[o].get(key)]
        if not values or not value:
            ratios[key] = None
            continue
        best = min(values) if lower_is_better(key) else max(values)
        ratios[key] = value / best
    return ratios


def compare_table(document: dict[str, Any]) -> str:
    names = [p["name"] for p in document["peers"]]
    medians = document["medians"]
    ratios = _ratios(document) if len(names) > 1 else {}
    header = [*names, *([f"{names[0]}/best"] if len(names) > 1 else [])]
    rows = []
    for key in medians[names[0]]:
        cells = [medians[n].get(key) for n in names]
        if len(names) > 1:
            cells.append(ratios.get(key))
        rows.append((key, cells))
    return format_table(header, rows)


def compare_plot(document: dict[str, Any], path: str) -> None:
    """The first registry's advantage over the best other, one bar a figure (log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [p["name"] for p in document["peers"]]
    advantage = [
        (key, (1 / r) if lower_is_better(key) else r) for key, r in _ratios(document).items() if r
    ]
    fig, ax = plt.subplots(figsize=(10, 0.3 * len(advantage) + 1.5))
    ax.barh([k for k, _ in advantage], [a for _, a in advantage],
            color=["tab:green" if a >= 1 else "tab:red" for _, a in advantage])  # fmt: skip
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xscale("log")
    ax.invert_yaxis()
    ax.set_xlabel(f"{names[0]} against the best of {', '.join(names[1:])} (x, higher is better)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
