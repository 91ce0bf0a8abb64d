"""``ocistore fsck``: checks a storage tree and, with ``repair``, fixes what can be fixed without
losing data.

Checked: every blob's bytes hash to its name (in parallel, in the Rust core, optionally at a
limited rate); the blob tree holds nothing but blobs; every link in every repository holds the
digest its path names and points at a stored blob (or manifest); every stored manifest is
readable and its blobs are linked; every tag points at a stored manifest. Repairs: a blob whose
bytes do not match its name is moved to ``docker/registry/v2/_ocistore/quarantine/`` (never
deleted); a link whose content disagrees with its path is rewritten from the path; a link to a
blob that is gone is removed. The debris a crash can leave (empty blob or link directories, an
upload that never got its data file, a tag directory whose first write never reached its
``current/link``) is not a problem; ``repair`` tidies it. Everything else is
reported for a person to decide.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from .. import _core, hashing
from .._core import Digest, Layout
from ..errors import OciStoreError
from ..progress import ProgressSink, counted
from .driver import ObjectStoreDriver, remove_tree
from .links import read_link, write_link
from .registry import Registry
from .repository import Repository

__all__ = ["Problem", "Report", "fsck"]


@dataclass
class Problem:
    kind: str
    path: str
    detail: str
    repaired: bool = False

    def __str__(self) -> str:
        state = "repaired" if self.repaired else "found"
        return f"{state}: {self.kind}: {self.path}: {self.detail}"


@dataclass
class Report:
    blobs_checked: int = 0
    bytes_checked: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        """True when nothing is left unrepaired."""
        return all(p.repaired for p in self.problems)


class _Reporter:
    """Collects problems from every checking thread, repairing what ``repair`` allows."""

    def __init__(self, repair: bool, log: Callable[[Problem], object] | None) -> None:
        self.report = Report()
        self.repair = repair
        self.log = log
        self.lock = threading.Lock()

    def __call__(
        self, kind: str, where: Path | str, detail: str, fix: Callable[[], object] | None = None
    ) -> None:
        found = Problem(kind, str(where), detail)
        if self.repair and fix is not None:
            fix()
            found.repaired = True
        with self.lock:
            self.report.problems.append(found)
        if self.log is not None:
            self.log(found)

    def checked(self, size: int) -> None:
        with self.lock:
            self.report.blobs_checked += 1
            self.report.bytes_checked += size


def _link_target(what: str, named: Digest, held: Digest | None) -> tuple[bool, Digest]:
    """Whether a link at ``named`` holding ``held`` is malformed, and the digest whose bytes it
    must find stored. A blob link may hold another algorithm's digest (distribution's alias: a
    blob pushed by sha512 is stored under its sha256, as ``linked::resolve`` reads it); any
    other link holds the digest it is filed under."""
    alias = what == "layer" and held is not None and held.algorithm != named.algorithm
    if alias and held is not None:
        return False, held
    return held != named, named


def _check_manifests(repo: Repository, problem: _Reporter, where: Path | str) -> None:
    """Every stored manifest of ``repo`` readable, and every blob it needs linked."""
    for digest in list(repo.manifests().enumerate()):
        try:
            manifest = repo.manifests().get(digest)
        except OciStoreError as e:
            problem("unreadable-manifest", where, f"{digest}: {e}")
            continue
        for ref in manifest.references():
            if ref.urls or repo.manifests().exists(ref.digest):
                continue
            try:
                repo.blobs().stat(ref.digest)
            except OciStoreError:
                problem("incomplete-manifest", where, f"{digest} needs {ref.digest}")


class _RateLimit:
    """Shared by the hashing threads: at most ``bytes_per_second`` overall."""

    def __init__(self, bytes_per_second: float | None) -> None:
        self.rate = bytes_per_second
        self.lock = threading.Lock()
        self.start = time.monotonic()
        self.granted = 0.0

    def take(self, n: int) -> None:
        if not self.rate:
            return
        with self.lock:
            self.granted += n
            due = self.start + self.granted / self.rate
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0  # reported as unreadable when its turn comes


def _listdir(path: Path) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except (FileNotFoundError, NotADirectoryError):
        return []


def _blob_entries(root: Path) -> Iterator[tuple[Path, Digest | None]]:
    """Every ``blobs/<alg>/<2>/<name>`` directory, with the digest it names if it names one."""
    blobs = root / Layout.blobs()
    for alg in _listdir(blobs):
        for prefix in _listdir(blobs / alg):
            for name in _listdir(blobs / alg / prefix):
                try:
                    digest = Digest(f"{alg}:{name}")
                except ValueError:
                    digest = None
                if digest is not None and not name.startswith(prefix):
                    digest = None
                yield blobs / alg / prefix / name, digest


def fsck(
    registry: Registry,
    *,
    repair: bool = False,
    jobs: int | None = None,
    rate_bytes_per_second: float | None = None,
    log: Callable[[Problem], object] | None = None,
    progress: ProgressSink | None = None,
) -> Report:
    """Checks ``registry``'s storage (see the module's description), ``jobs`` blobs hashed at a
    time, at most ``rate_bytes_per_second`` read; each problem goes to ``log`` as it is found,
    the phases and how far they got to ``progress``."""
    if isinstance(registry.driver, ObjectStoreDriver):
        return _fsck_object_storage(
            registry, registry.driver, repair, jobs, rate_bytes_per_second, log, progress
        )
    problem = _Reporter(repair, log)
    root = registry.driver.require_filesystem("fsck")
    quarantine = root / Layout.quarantine()
    limit = _RateLimit(rate_bytes_per_second)

    def check_blob(directory: Path, digest: Digest) -> None:
        data = directory / Layout.UPLOAD_DATA
        try:
            size = data.stat().st_size
            limit.take(size)
            actual = _core.hash_file(data, digest.algorithm)
        except OSError as e:
            problem("unreadable-blob", data, str(e))
            return
        problem.checked(size)
        if progress is not None:
            progress.advance(size)
        if actual != digest:

            def move_aside() -> None:
                quarantine.mkdir(parents=True, exist_ok=True)
                shutil.move(str(data), quarantine / f"{digest.algorithm}-{digest.hex}")
                remove_tree(directory)

            problem("corrupt-blob", data, f"bytes hash to {actual}", move_aside)

    candidates = []
    for directory, digest in _blob_entries(root):
        if digest is None:
            problem("stray-in-blob-tree", directory, "not named after a digest")
        elif not (directory / Layout.UPLOAD_DATA).is_file():
            if not _listdir(directory):
                # An empty directory is what a delete or a commit interrupted between its two
                # steps leaves: no blob, no data at risk. Tidied by --repair, not a problem.
                if repair:
                    remove_tree(directory)
                continue
            problem("blob-without-data", directory, "no data file", partial(remove_tree, directory))
        else:
            candidates.append((directory, digest))
    if progress is not None:
        total = sum(_size(d / Layout.UPLOAD_DATA) for d, _ in candidates)
        progress.phase("fsck: hashing blobs", total, "B")
    with concurrent.futures.ThreadPoolExecutor(jobs or os.cpu_count() or 2) as pool:
        for future in [pool.submit(check_blob, d, g) for d, g in candidates]:
            future.result()

    def stored(digest: Digest) -> bool:
        return Path(registry.blobs().path(digest)).is_file()

    def check_links(base: Path, what: str) -> None:
        for alg in _listdir(base):
            for name in _listdir(base / alg):
                link = base / alg / name / Layout.LINK
                try:
                    named = Digest(f"{alg}:{name}")
                except ValueError:
                    problem(f"malformed-{what}-link", base / alg / name, "not named after a digest")
                    continue
                if not link.exists() and all(e.startswith(".") for e in _listdir(link.parent)):
                    # A link write interrupted before its rename leaves the directory and perhaps
                    # a temporary file: no link, nothing lost. Tidied by --repair.
                    if repair:
                        remove_tree(link.parent)
                    continue
                held = read_link(link)
                malformed, target = _link_target(what, named, held)
                if malformed:
                    problem(
                        f"malformed-{what}-link",
                        link,
                        f"holds {held or 'nothing readable'}, names {named}",
                        partial(write_link, link, named),
                    )
                if not stored(target):
                    problem(
                        f"dangling-{what}-link",
                        link,
                        f"{target} is not stored",
                        partial(remove_tree, base / alg / name),
                    )

    for name in counted(
        list(registry.repositories()), progress, "fsck: checking repositories", "repositories"
    ):
        repo = registry.repository(name)
        check_links(root / Layout.layers(name), "layer")
        check_links(root / Layout.revisions(name), "revision")
        _check_manifests(repo, problem, repo.path)
        tags = root / Layout.tags(name)
        for tag in _listdir(tags):
            current = root / Layout.tag_current_link(name, tag)
            target = read_link(current)
            if target is None and not current.exists():
                # A first tag write cut off before its current link: the tag never existed (the
                # tag list skips it). Debris, tidied under the lock tag writes take.
                if repair:
                    with registry.gc_lock():
                        if not current.exists():
                            remove_tree(tags / tag)
            elif target is None:
                problem("malformed-tag", tags / tag, "unreadable current/link")
            elif not repo.manifests().exists(target):
                problem("tag-to-missing-manifest", tags / tag, f"points at {target}")

    upload_dirs = [root / key for key in registry.upload_dirs()]
    for uploads in upload_dirs:
        for entry in _listdir(uploads):
            upload = uploads / entry
            if repair and not (upload / Layout.UPLOAD_DATA).is_file():
                # An upload created by a process killed before its data file existed: nothing to
                # resume and nothing to lose. Debris, tidied by --repair (upload purging would
                # remove it too, by age).
                remove_tree(upload)
    return problem.report


#: Reads of a blob's bytes while fsck hashes them on object storage (sequential: the store's
#: reader streams the rest of a blob after its first blocks).
OBJECT_READ = 8 * 1024 * 1024


def _fsck_object_storage(
    registry: Registry,
    driver: ObjectStoreDriver,
    repair: bool,
    jobs: int | None,
    rate_bytes_per_second: float | None,
    log: Callable[[Problem], object] | None,
    progress: ProgressSink | None,
) -> Report:
    """``fsck`` on object storage: the same checks and repairs over the store's keys. Blobs are
    re-hashed from streaming reads, ``jobs`` at a time; a corrupt one is copied into the
    quarantine (in the store) before its key goes. What only a filesystem leaves behind (empty
    directories, uploads without a data file) does not arise."""
    problem = _Reporter(repair, log)
    store = driver.store
    limit = _RateLimit(rate_bytes_per_second)
    blobs = Layout.blobs() + "/"
    candidates: list[Digest] = []
    for key in store.walk(blobs):
        parts = key[len(blobs) :].split("/")
        digest: Digest | None = None
        if len(parts) == 4 and parts[3] == Layout.UPLOAD_DATA and parts[2].startswith(parts[1]):
            with contextlib.suppress(ValueError):
                digest = Digest(f"{parts[0]}:{parts[2]}")
        if digest is None:
            problem("stray-in-blob-tree", key, "not a blob's data")
        else:
            candidates.append(digest)

    def check_blob(digest: Digest) -> None:
        key = Layout.blob_data(digest)
        hasher = hashing.new(digest.algorithm)
        try:
            with registry.blobs().open(digest) as reader:
                size = reader.size
                for offset in range(0, size, OBJECT_READ):
                    block = reader.read_at(offset, min(OBJECT_READ, size - offset))
                    limit.take(len(block))
                    hasher.update(block)
        except OciStoreError as e:
            problem("unreadable-blob", key, str(e))
            return
        problem.checked(size)
        if progress is not None:
            progress.advance()
        actual = Digest.from_bytes(digest.algorithm, hasher.digest())
        if actual != digest:

            def move_aside() -> None:
                store.copy(key, f"{Layout.quarantine()}/{digest.algorithm}-{digest.hex}")
                store.delete(key)

            problem("corrupt-blob", key, f"bytes hash to {actual}", move_aside)

    if progress is not None:
        progress.phase("fsck: hashing blobs", len(candidates), "blobs")
    with concurrent.futures.ThreadPoolExecutor(jobs or 2 * (os.cpu_count() or 2)) as pool:
        for future in [pool.submit(check_blob, d) for d in candidates]:
            future.result()

    def stored(digest: Digest) -> bool:
        return store.stat(Layout.blob_data(digest)) is not None

    def check_links(base: str, what: str) -> None:
        for alg in driver.list(base):
            for name in driver.list(f"{base}/{alg}"):
                key = f"{base}/{alg}/{name}/{Layout.LINK}"
                try:
                    named = Digest(f"{alg}:{name}")
                except ValueError:
                    problem(f"malformed-{what}-link", key, "not named after a digest")
                    continue
                data = driver.read(key)
                if data is None:
                    continue  # a prefix some servers keep listing after its objects went
                held = Layout.parse_link(data)
                malformed, target = _link_target(what, named, held)
                if malformed:
                    problem(
                        f"malformed-{what}-link",
                        key,
                        f"holds {held or 'nothing readable'}, names {named}",
                        partial(driver.write, key, str(named).encode()),
                    )
                if not stored(target):
                    problem(
                        f"dangling-{what}-link",
                        key,
                        f"{target} is not stored",
                        partial(driver.delete, key),
                    )

    for name in counted(
        list(registry.repositories()), progress, "fsck: checking repositories", "repositories"
    ):
        repo = registry.repository(name)
        check_links(Layout.layers(name), "layer")
        check_links(Layout.revisions(name), "revision")
        _check_manifests(repo, problem, Layout.repository(name))
        for tag in repo.tags().all():
            target = repo.tags().resolve(tag)
            if not repo.manifests().exists(target):
                problem("tag-to-missing-manifest", Layout.tag_dir(name, tag), f"points at {target}")
    return problem.report
