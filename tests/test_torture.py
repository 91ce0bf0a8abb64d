"""A short run of the crash torture (benches/torture.py): SIGKILL a pusher, through the Python
API and through `ocistore serve`, and check that nothing is lost or half-visible."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benches"))

import torture


def test_kills_through_the_python_api(tmp_path: Path) -> None:
    totals = torture.torture_api(tmp_path / "api", kills=6, seed=7, log=False)
    assert totals["kills"] == 6


def test_kills_of_the_server(tmp_path: Path) -> None:
    totals = torture.torture_serve(tmp_path / "serve", kills=3, seed=7, log=False)
    assert totals["server_kills"] == 3
    assert totals["blobs_pushed"] + totals["resumed"] > 0
