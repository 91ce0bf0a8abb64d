"""``python -m ocistore``: the ``ocistore`` command."""

import sys

from .cli import main

sys.exit(main())
