"""The registry's HTTP API (OCI Distribution Specification v1.1) as an ASGI application."""

from .app import RegistryApp
from .config import Config, ConfigError, load_config

__all__ = ["Config", "ConfigError", "RegistryApp", "load_config"]
