"""Entry point for ``python -m transfer_core``."""

from .cli import main
from .process_exit import exit_now

exit_now(main())
