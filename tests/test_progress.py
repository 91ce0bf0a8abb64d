"""Progress reports of the long-running commands: a bar on a terminal, plain lines in a pipe."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

from ocistore import BlobStore
from ocistore.progress import ProgressReport, counted, format_amount


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_amounts_read_as_a_person_would() -> None:
    assert format_amount(0, "B") == "0 B"
    assert format_amount(1023, "B") == "1023 B"
    assert format_amount(1536, "B") == "1.5 KiB"
    assert format_amount(3 * 1024**3, "B") == "3.0 GiB"
    assert format_amount(7, "blobs") == "7 blobs"
    assert format_amount(7.9, "") == "7"


def test_a_pipe_gets_a_line_per_interval_and_one_per_phase_end() -> None:
    out = io.StringIO()
    report = ProgressReport(out, interval=0.0)  # every advance is past the interval
    report.phase("hashing", 4 * 1024 * 1024, "B")
    report.advance(1024 * 1024)
    report.advance(1024 * 1024)
    report.phase("links", 3, "repositories")
    report.advance()
    report.close()
    report.close()  # idempotent: no second final line
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue() and "\x1b" not in out.getvalue()
    assert lines[0].startswith("hashing:  25% (1.0 MiB of 4.0 MiB")
    assert lines[1].startswith("hashing:  50% (2.0 MiB of 4.0 MiB")
    assert re.fullmatch(r"hashing: done, 2\.0 MiB in \d+\.\d s \(.*/s\)", lines[2]), lines[2]
    assert lines[3].startswith("links:  33% (1 of 3 repositories")
    assert lines[4].startswith("links: done, 1 repositories in ")
    assert len(lines) == 5


def test_a_pipe_is_not_flooded() -> None:
    out = io.StringIO()
    with ProgressReport(out, interval=3600) as report:
        report.phase("import", 10_000, "B")
        for _ in range(10_000):
            report.advance(1)
    assert out.getvalue().splitlines() == [out.getvalue().splitlines()[0]]
    assert out.getvalue().startswith("import: done, 9.8 KiB in ")


def test_a_terminal_gets_a_bar_redrawn_in_place() -> None:
    out = Terminal()
    report = ProgressReport(out, redraw=1e9)
    report.phase("export", 100, "B")
    report.advance(50)
    report.say("a line between", out)
    report.advance(50)
    report.close()
    text = out.getvalue()
    assert "\r\x1b[K" + "export: [" + "#" * 12 + "." * 12 + "]  50% (50 B of 100 B" in text
    # The line printed while the bar shows: the bar erased first, drawn again after it.
    assert "\r\x1b[Ka line between\n\r\x1b[Kexport: [" in text
    assert text.endswith("\n") and text.count("\n") == 2
    assert "export: done, 100 B in " in text.splitlines()[-1]


def test_advances_from_many_threads_add_up() -> None:
    out = io.StringIO()
    report = ProgressReport(out, interval=3600)
    report.phase("fsck", None, "blobs")

    def work() -> None:
        for _ in range(5000):
            report.advance()

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    report.close()
    assert out.getvalue().startswith("fsck: done, 40000 blobs in ")


def test_counted_items_make_a_phase_of_their_count() -> None:
    out = io.StringIO()
    with ProgressReport(out, interval=0.0) as report:
        seen = []
        for item in counted(["a", "b", "c"], report, "gc: sweeping", "blobs"):
            seen.append(item)
            percent = {1: " 33%", 2: " 67%", 3: "100%"}[len(seen)]
            assert out.getvalue().splitlines()[-1].startswith(f"gc: sweeping: {percent}")
    assert seen == ["a", "b", "c"]
    assert out.getvalue().splitlines()[-1].startswith("gc: sweeping: done, 3 blobs in ")
    assert list(counted([1, 2], None, "quiet", "items")) == [1, 2]


def test_slow_counts_keep_a_decimal_in_their_rate() -> None:
    out, now = io.StringIO(), [100.0]
    with ProgressReport(out, clock=lambda: now[0]) as report:
        report.phase("bench compare", 10, "measurements")
        now[0] += 4.0
        report.advance()
    assert re.search(r"done, 1 measurements in 4\.0 s \(0\.2 measurements/s\)", out.getvalue())


def test_disabled_and_phaseless_reports_write_nothing() -> None:
    out = Terminal()
    with ProgressReport(out, enabled=False) as report:
        report.phase("x", 10)
        report.advance(5)
    with ProgressReport(out) as idle:
        idle.advance(3)  # before any phase: nothing to report
    assert out.getvalue() == ""


def ocistore(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ocistore", *args], capture_output=True, text=True, timeout=120
    )


def test_commands_report_progress_as_plain_lines_when_piped(tmp_path: Path) -> None:
    """import, export, fsck and gc each end their phases with a plain line on standard error
    (standard output stays the command's result)."""
    root = tmp_path / "root"
    layout = tmp_path / "layout"
    store = BlobStore(tmp_path / "src")
    layer = os.urandom(3 * 1024 * 1024)
    config = b'{"architecture":"amd64","os":"linux"}'
    descs = [store.put("application/octet-stream", b) for b in (layer, config)]
    (layout / "blobs" / "sha256").mkdir(parents=True)
    for d, b in zip(descs, (layer, config), strict=True):
        (layout / "blobs" / "sha256" / d.digest.hex).write_bytes(b)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": str(descs[1].digest),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": str(descs[0].digest),
                    "size": len(layer),
                }
            ],
        }
    ).encode()
    m = store.put("application/octet-stream", manifest)
    (layout / "blobs" / "sha256" / m.digest.hex).write_bytes(manifest)
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": str(m.digest),
                "size": len(manifest),
                "annotations": {"org.opencontainers.image.ref.name": "v1"},
            }
        ],
    }
    (layout / "index.json").write_text(json.dumps(index))

    imported = ocistore("import", str(layout), "app:v1", "--root", str(root))
    assert imported.returncode == 0, imported.stderr
    assert re.search(r"^import: done, 3\.0 MiB in ", imported.stderr, re.M), imported.stderr
    assert f"app:v1@{m.digest}" in imported.stdout

    exported = ocistore("export", "app:v1", str(tmp_path / "out"), "--root", str(root))
    assert exported.returncode == 0, exported.stderr
    total = len(layer) + len(config) + len(manifest)
    assert re.search(rf"^export: done, {total / 1024 / 1024:.1f} MiB in ", exported.stderr, re.M)
    assert exported.stdout.startswith(str(m.digest))

    checked = ocistore("fsck", str(root))
    assert checked.returncode == 0, checked.stderr
    assert re.search(r"^fsck: hashing blobs: done, 3\.0 MiB in ", checked.stderr, re.M)
    assert re.search(r"^fsck: checking repositories: done, 1 repositories", checked.stderr, re.M)

    collected = ocistore("gc", str(root), "--min-age", "0s", "--json")
    assert collected.returncode == 0, collected.stderr
    assert re.search(r"^gc: marking: done, 1 repositories", collected.stderr, re.M)
    assert re.search(r"^gc: sweeping: done, 3 blobs", collected.stderr, re.M)
    assert json.loads(collected.stdout)["deleted_blobs"] == []


def test_say_in_a_pipe_is_just_the_line() -> None:
    out, lines = io.StringIO(), io.StringIO()
    with ProgressReport(out, interval=0.0) as report:
        report.phase("gc: sweeping", 2, "blobs")
        report.say("deleting blob sha256:…", lines)
    assert lines.getvalue() == "deleting blob sha256:…\n"
    assert "\r" not in out.getvalue()
