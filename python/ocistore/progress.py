"""Progress of the long-running commands (import, export, fsck, gc, bench).

The library reports progress to a :class:`ProgressSink` (a phase begins, work advances); the
command line draws it with :class:`ProgressReport`: a bar redrawn in place when the stream is a
terminal, a plain line now and then (and one when a phase ends) when it is a pipe or a log, so
that a job's log shows how far it got without a screenful of carriage returns. Standard library
only: the library install has no third-party dependencies.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import IO, Protocol, TypeVar

__all__ = ["ProgressReport", "ProgressSink", "counted", "format_amount"]

T = TypeVar("T")


class ProgressSink(Protocol):
    """Where a long-running operation reports how far it got. ``advance`` may be called from
    several threads."""

    def phase(self, name: str, total: int | None = None, unit: str = "") -> None:
        """A new phase begins (the previous one, if any, is over); ``total`` in ``unit``s
        when known. ``unit`` ``"B"`` is bytes, shown in KiB, MiB, GiB."""

    def advance(self, n: int = 1) -> None:
        """``n`` more units of the current phase are done."""


def counted(
    items: Sequence[T], progress: ProgressSink | None, phase: str, unit: str
) -> Iterator[T]:
    """``items`` one by one, as the phase ``phase`` of ``progress`` (when given): it begins with
    their count and advances by one as each is taken."""
    if progress is not None:
        progress.phase(phase, len(items), unit)
    for item in items:
        if progress is not None:
            progress.advance()
        yield item


_BINARY = ("B", "KiB", "MiB", "GiB", "TiB")


def format_amount(value: float, unit: str) -> str:
    """``value`` for a person: bytes in binary multiples, anything else as a count."""
    if unit != "B":
        return f"{int(value)} {unit}".rstrip()
    scaled, index = float(value), 0
    while scaled >= 1024 and index < len(_BINARY) - 1:
        scaled /= 1024
        index += 1
    return f"{int(scaled)} B" if index == 0 else f"{scaled:.1f} {_BINARY[index]}"


def _rate(per_second: float, unit: str) -> str:
    """A rate: counts below ten a second keep a decimal (0.3 measurements/s, not 0)."""
    if unit != "B" and per_second < 10:
        return f"{per_second:.1f} {unit}".rstrip()
    return format_amount(per_second, unit)


class ProgressReport:
    """A :class:`ProgressSink` that writes to ``stream`` (standard error by default): a bar on a
    terminal, redrawn at most ``redraw`` times a second; plain lines every ``interval`` seconds
    and at the end of each phase otherwise. ``enabled=False`` writes nothing; ``clock`` is what
    elapsed time is read from."""

    BAR_WIDTH = 24

    def __init__(
        self,
        stream: IO[str] | None = None,
        *,
        terminal: bool | None = None,
        interval: float = 10.0,
        redraw: float = 10.0,
        enabled: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        isatty = getattr(self.stream, "isatty", None)
        self.terminal = terminal if terminal is not None else bool(isatty and isatty())
        self.period = 1.0 / redraw if self.terminal else interval
        self.enabled = enabled
        self.clock = clock
        self._lock = threading.Lock()
        self._name: str | None = None
        self._total: int | None = None
        self._unit = ""
        self._done = 0
        self._started = 0.0
        self._shown = 0.0

    def phase(self, name: str, total: int | None = None, unit: str = "") -> None:
        with self._lock:
            self._finish()
            self._name, self._total, self._unit = name, total, unit
            self._done = 0
            self._started = self._shown = self.clock()
            if self.terminal:
                self._write(self._line(self._started), final=False)

    def advance(self, n: int = 1) -> None:
        with self._lock:
            if self._name is None:
                return
            self._done += n
            now = self.clock()
            if now - self._shown >= self.period:
                self._shown = now
                self._write(self._line(now), final=False)

    def say(self, line: str, file: IO[str] | None = None) -> None:
        """Prints ``line`` (to ``file``, standard output by default) without garbling the bar:
        on a terminal the bar is erased first and drawn again below the line."""
        with self._lock:
            drawn = self.enabled and self.terminal and self._name is not None
            if drawn:
                self.stream.write("\r\x1b[K")
                self.stream.flush()
            print(line, file=file if file is not None else sys.stdout, flush=True)
            if drawn:
                self._write(self._line(self.clock()), final=False)

    def close(self) -> None:
        """Ends the last phase (its final line)."""
        with self._lock:
            self._finish()

    def __enter__(self) -> ProgressReport:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _finish(self) -> None:
        if self._name is None:
            return
        now = self.clock()
        self._write(self._line(now, final=True), final=True)
        self._name = None

    def _line(self, now: float, *, final: bool = False) -> str:
        name, total, unit, done = self._name, self._total, self._unit, self._done
        elapsed = now - self._started
        rate = f"{_rate(done / elapsed, unit)}/s" if elapsed > 0 and done else ""
        if final:
            return f"{name}: done, {format_amount(done, unit)} in {elapsed:.1f} s" + (
                f" ({rate})" if rate else ""
            )
        if not total:
            return f"{name}: {format_amount(done, unit)}" + (f", {rate}" if rate else "")
        fraction = min(1.0, done / total)
        bar = ""
        if self.terminal:
            filled = round(fraction * self.BAR_WIDTH)
            bar = "[" + "#" * filled + "." * (self.BAR_WIDTH - filled) + "] "
        of = (
            f"{format_amount(done, unit)} of {format_amount(total, unit)}"
            if unit == "B"
            else f"{done} of {format_amount(total, unit)}"
        )
        return f"{name}: {bar}{fraction * 100:3.0f}% ({of}" + (f", {rate})" if rate else ")")

    def _write(self, line: str, *, final: bool) -> None:
        if not self.enabled:
            return
        if self.terminal:
            # Erase what a longer earlier line left, end the line only when the phase is over.
            self.stream.write("\r\x1b[K" + line + ("\n" if final else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
