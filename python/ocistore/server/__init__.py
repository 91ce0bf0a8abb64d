"""The registry's HTTP API (OCI Distribution Specification v1.1) as an ASGI application.

Kept free of imports of the application itself: ``ocistore serve`` must be able to set up the
environment (for example ``PROMETHEUS_MULTIPROC_DIR``) before workers import it.
"""

from .config import Config, ConfigError, load_config

__all__ = ["Config", "ConfigError", "load_config"]
