"""Which optional extra provides what: the one place that knows it.

``pip install ocistore`` is the library alone, with no third-party dependencies. The registry,
its alternative HTTP server, the benchmark client and the redis descriptor cache each come with
an extra (their package lists are in ``pyproject.toml``); the code that needs one calls
:func:`require` first, so that a missing extra is one line that says what to install rather
than an ``ImportError`` from deep inside.
"""

from __future__ import annotations

import importlib.util

__all__ = ["EXTRAS", "MissingExtra", "require"]

#: What the registry needs besides its HTTP server.
_REGISTRY = (
    "yaml",
    "prometheus_client",
    "jwt",
    "cryptography",
    "bcrypt",
    "httpx",
    "certifi",
    "redis",
)

#: The modules each check needs, as imported (a check imports nothing itself).
EXTRAS: dict[str, tuple[str, ...]] = {
    "server": ("granian", *_REGISTRY),
    "uvicorn": ("uvicorn", *_REGISTRY),
    "config": ("yaml",),
    "bench": ("httpx",),
    "plot": ("matplotlib",),
    "redis": ("redis",),
}

#: The extra to name in the message, when a check's own name is not one users install.
_INSTALL = {"config": "server", "plot": "bench"}


class MissingExtra(ImportError):
    """What a feature needs is not installed; the message says which extra brings it."""


def require(extra: str, what: str) -> None:
    """Raises :class:`MissingExtra` unless every module of ``extra`` can be imported;
    ``what`` names the feature in the message (``"ocistore serve"``)."""
    missing = [m for m in EXTRAS[extra] if importlib.util.find_spec(m) is None]
    if missing:
        name = _INSTALL.get(extra, extra)
        raise MissingExtra(
            f"{what} needs the '{name}' extra (missing: {', '.join(missing)}): "
            f"pip install 'ocistore[{name}]'",
            name=missing[0],
        )
