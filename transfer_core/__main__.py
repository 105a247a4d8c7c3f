"""Entry point for ``python -m transfer_core``."""

import sys

from .cli import main

sys.exit(main())
