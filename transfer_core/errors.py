"""The one exception type users see.

Every problem caused by input (a bad path, a bad setting, an unavailable backbone) is raised
as :class:`WarmstartError` with a single sentence that names the bad value and says what to
do. The CLI turns it into exit code 2, the app into an error box; anything else is a bug.
"""

from __future__ import annotations

__all__ = ["WarmstartError"]


class WarmstartError(ValueError):
    """A user-facing error whose message is one sentence, ready to show as is."""
