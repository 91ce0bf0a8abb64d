"""The application factory servers import: ``ocistore.server.asgi:create_app`` (factory).

Workers read their configuration from ``OCISTORE_CONFIG`` (JSON written by ``ocistore serve``),
or use the defaults.
"""

from __future__ import annotations

import os

from .app import RegistryApp
from .config import Config
from .logs import configure_logging

__all__ = ["create_app"]


def create_app() -> RegistryApp:
    raw = os.environ.get("OCISTORE_CONFIG")
    config = Config.from_json(raw) if raw else Config()
    configure_logging(config.log_level, config.log_formatter)
    return RegistryApp(config)
