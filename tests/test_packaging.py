"""What `pip install ocistore` gives: one abi3 wheel with no third-party dependencies that works
in a fresh venv without a Rust toolchain, commands that name the extra they lack, and an sdist
that builds.

The wheel is built from this tree as `make dist` builds it (the same cargo profile as `make
setup`, so cargo finds everything already compiled); the sdist build compiles the crate again
from the unpacked sources, sharing this tree's target directory for the dependencies.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import textwrap
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MATURIN = Path(sys.executable).parent / "maturin"


def run(
    *args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=1200, cwd=cwd, env=env
    )


def without_rust(environ: dict[str, str]) -> dict[str, str]:
    """The environment of a machine with no Rust toolchain: no PATH entry holding cargo or
    rustc, no rustup or cargo homes."""
    path = [
        d
        for d in environ.get("PATH", "").split(os.pathsep)
        if d and not any(os.path.exists(os.path.join(d, tool)) for tool in ("cargo", "rustc"))
    ]
    env = {k: v for k, v in environ.items() if k not in ("CARGO_HOME", "RUSTUP_HOME")}
    env["PATH"] = os.pathsep.join(path)
    assert shutil.which("cargo", path=env["PATH"]) is None
    assert shutil.which("rustc", path=env["PATH"]) is None
    return env


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    built = run(MATURIN, "build", "--release", "--quiet", "--out", out, cwd=ROOT)
    assert built.returncode == 0, built.stderr
    made = run(MATURIN, "sdist", "--out", out, cwd=ROOT)
    assert made.returncode == 0, made.stderr
    return out


@pytest.fixture(scope="module")
def lean(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding the wheel alone, installed with no index: any dependency would
    fail the install."""
    where = tmp_path_factory.mktemp("lean") / "venv"
    venv.create(where, with_pip=True, symlinks=True)
    (wheel,) = dist.glob("*.whl")
    installed = run(
        where / "bin" / "pip", "install", "--quiet", "--no-index", "--disable-pip-version-check",
        wheel, env=without_rust(dict(os.environ)),
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr
    return where


def in_lean(lean: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``args[0]`` from the lean venv's bin, with no Rust in reach and nothing of this tree's
    venv on the path."""
    env = without_rust({k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    return run(lean / "bin" / args[0], *args[1:], cwd=cwd or lean, env=env)


def test_one_wheel_for_every_python_from_3_11(dist: Path) -> None:
    (wheel,) = dist.glob("*.whl")
    assert "-cp311-abi3-" in wheel.name, wheel.name
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        metadata = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "ocistore/_core.abi3.so" in names
    assert "ocistore/_core.pyi" in names and "ocistore/py.typed" in names
    # No dependency outside an extra; each extra is declared.
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    assert requires and all("extra ==" in line for line in requires), requires
    for extra in ("server", "uvicorn", "bench", "redis"):
        assert f"Provides-Extra: {extra}" in metadata
    assert "Requires-Python: >=3.11" in metadata


def test_the_library_works_with_no_extras_and_no_rust(lean: Path, tmp_path: Path) -> None:
    listed = in_lean(lean, "pip", "list", "--format=freeze", "--disable-pip-version-check")
    installed = {line.split("==")[0].lower() for line in listed.stdout.split()}
    assert installed <= {"ocistore", "pip", "setuptools"}, installed
    script = textwrap.dedent(
        """
        import asyncio, sys
        import ocistore
        from ocistore import BlobStore, Descriptor, Registry, hashing
        from ocistore.aio import AsyncBlobStore
        from ocistore.bulk import export_image
        from ocistore.storage import ManifestBuilder
        import ocistore.adapters.quay

        assert not any(m in sys.modules for m in ("yaml", "httpx", "granian", "redis"))
        store = BlobStore("store")
        d = store.put("application/octet-stream", b"hello")
        assert store.get(d.digest) == b"hello"
        with store.open(d.digest) as r:
            assert r.read_at(1, 3) == b"ell"
        h = hashing.sha256(); h.update(b"hello")
        assert "sha256:" + h.hexdigest() == str(d.digest)
        state = h.state(); assert hashing.sha256.from_state(state).hexdigest() == h.hexdigest()

        repo = Registry("registry").repository("app")
        layer = repo.blobs().put("application/vnd.oci.image.layer.v1.tar", b"layer bytes")
        builder = ManifestBuilder(repo.blobs()).set_config_data(
            "application/vnd.oci.image.config.v1+json", b"{}"
        )
        builder.append_reference(
            Descriptor("application/vnd.oci.image.layer.v1.tar", layer.digest, layer.size)
        )
        manifest = builder.build()
        digest = repo.manifests().put(manifest, tag="v1")
        assert repo.tags().resolve("v1") == digest
        entry = export_image(Registry("registry"), "app", "v1", "layout")
        assert entry.digest == digest

        async def main():
            blobs = AsyncBlobStore(store)
            assert await blobs.get(d.digest) == b"hello"
        asyncio.run(main())
        print("library ok", ocistore.__version__)
        """
    )
    ran = in_lean(lean, "python", "-c", script, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.startswith("library ok 0."), ran.stdout
    version = in_lean(lean, "ocistore", "--version")
    assert version.returncode == 0 and ran.stdout.split()[-1] in version.stdout
    # A command of the library runs too: fsck of what the script wrote.
    checked = in_lean(lean, "ocistore", "fsck", str(tmp_path / "registry"))
    assert checked.returncode == 0, checked.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["serve"],
            "ocistore: ocistore serve needs the 'server' extra (missing: granian, yaml, "
            "prometheus_client, jwt, cryptography, bcrypt, httpx, certifi, redis): "
            "pip install 'ocistore[server]'",
        ),
        (
            ["serve", "--server", "uvicorn"],
            "ocistore: ocistore serve needs the 'uvicorn' extra (missing: uvicorn, yaml, "
            "prometheus_client, jwt, cryptography, bcrypt, httpx, certifi, redis): "
            "pip install 'ocistore[uvicorn]'",
        ),
        (
            ["bench", "http", "http://127.0.0.1:9"],
            "ocistore: ocistore bench http needs the 'bench' extra (missing: httpx): "
            "pip install 'ocistore[bench]'",
        ),
        (
            ["gc", "--config", "config.yml"],
            "ocistore: --config needs the 'server' extra (missing: yaml): "
            "pip install 'ocistore[server]'",
        ),
        (
            ["fsck", "--config", "config.yml"],
            "ocistore: --config needs the 'server' extra (missing: yaml): "
            "pip install 'ocistore[server]'",
        ),
    ],
)
def test_a_command_names_the_extra_it_lacks(lean: Path, args: list[str], message: str) -> None:
    ran = in_lean(lean, "ocistore", *args)
    assert ran.returncode == 2
    assert ran.stderr == message + "\n"
    assert ran.stdout == ""


def test_the_sdist_holds_the_sources_and_builds(dist: Path, tmp_path: Path) -> None:
    (sdist,) = dist.glob("*.tar.gz")
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    for needed in (
        "pyproject.toml",
        "Cargo.toml",
        "Cargo.lock",
        "src/lib.rs",
        "src/py/mod.rs",
        "python/ocistore/__init__.py",
        "python/ocistore/_core.pyi",
        "python/ocistore/py.typed",
    ):
        assert needed in names, needed
    assert not any(
        n.startswith(("target/", ".venv/", "tests/", "benches/", "docs/")) for n in names
    )
    assert not any(n.endswith(".so") or "__pycache__" in n for n in names)
    # Built as pip builds an sdist (its own directory, the pyproject's backend); the
    # dependencies' compiled artifacts are shared with this tree's build.
    path = os.pathsep.join([str(MATURIN.parent), os.environ.get("PATH", "")])
    env = dict(os.environ, CARGO_TARGET_DIR=str(ROOT / "target"), PATH=path)
    built = run(
        sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
        "--disable-pip-version-check", "--wheel-dir", tmp_path, sdist, env=env,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-4000:]
    (wheel,) = tmp_path.glob("*.whl")
    (original,) = dist.glob("*.whl")
    # The same interpreter tags (pip's build leaves the platform tag plain linux_x86_64).
    assert wheel.name.split("-")[:4] == original.name.split("-")[:4]
    with zipfile.ZipFile(wheel) as a, zipfile.ZipFile(original) as b:
        assert sorted(a.namelist()) == sorted(b.namelist())
