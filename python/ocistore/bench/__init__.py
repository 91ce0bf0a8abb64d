"""``ocistore bench``: measurements a user can run on their own machine and registry.

:mod:`ocistore.bench.ingest` is the core ingest comparison (ocistore against a naive Python
ingest, hashlib alone and ``dd``); :mod:`ocistore.bench.http` measures any registry over the
OCI Distribution API. This module holds what both share: progress reporting and the table.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from ..progress import ProgressReport

MIB = 1024 * 1024

#: Called with the amount of work just done (bytes, repetitions, requests: what the bar counts).
Advance = Callable[[float], object]


@contextmanager
def measurement(label: str, total: float, unit: str = "it") -> Iterator[Advance]:
    """One progress report on standard error while a measurement runs: a bar on a terminal;
    elsewhere (logs, CI) a line now and then and one when it ends, so the output stays
    readable."""
    with ProgressReport() as report:
        report.phase(label, int(total), "B" if unit == "B" else unit)
        yield lambda amount: report.advance(int(amount))


def median_seconds(
    fn: Callable[[], object],
    repeat: int,
    setup: Callable[[], object] | None = None,
    advance: Advance | None = None,
) -> float:
    """The median wall time of ``repeat`` calls of ``fn``, each after an untimed ``setup``."""
    times = []
    for _ in range(repeat):
        if setup is not None:
            setup()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
        if advance is not None:
            advance(1)
    return statistics.median(times)


#: A table row: label, then the cells (None: not measured).
Row = tuple[str, Sequence[float | None]]


def format_table(header: Sequence[str], rows: Sequence[Row]) -> str:
    """Labels left-aligned, numbers right-aligned under ``header`` (one name per cell column)."""
    width = max(len(label) for label, _ in rows) + 2
    columns = [max(10, len(name) + 2) for name in header]
    lines = [
        "".ljust(width) + "".join(name.rjust(w) for name, w in zip(header, columns, strict=True))
    ]
    for label, cells in rows:
        text = "".join(
            ("-" if value is None else _number(value)).rjust(w)
            for value, w in zip(cells, columns, strict=True)
        )
        lines.append(label.ljust(width) + text)
    return "\n".join(lines)


def _number(value: float) -> str:
    """Three significant digits or more: 1234, 123.4, 1.23, 0.0123."""
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def write_json(path: str, document: Mapping[str, object]) -> None:
    Path(path).write_text(json.dumps(document, indent=2) + "\n")
