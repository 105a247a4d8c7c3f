"""Entry point for ``python -m warmstart`` (the same as the ``warmstart`` command)."""

import sys

from .launcher import main

sys.exit(main())
