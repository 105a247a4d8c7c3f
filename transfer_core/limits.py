"""Limits on untrusted input, configurable per server through environment variables.

Uploads come from people we do not control. Each limit refuses an input before it can
exhaust memory or disk, with a message that names the limit so an administrator knows
which variable to raise:

=================================  ===================================  ==================
variable                           limit                                default
=================================  ===================================  ==================
``WARMSTART_MAX_IMAGE_PIXELS``     pixels of one decoded image          64,000,000
``WARMSTART_MAX_ARCHIVE_FILES``    files in one zip                     200,000
``WARMSTART_MAX_ARCHIVE_MB``       uncompressed size of one zip         20,480 MB
``WARMSTART_MAX_COMPRESSION``      uncompressed/compressed per entry    200
``WARMSTART_MAX_UPLOAD_MB``        size of one uploaded file            2,000 MB
=================================  ===================================  ==================
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from .errors import WarmstartError

__all__ = ["InputLimits", "input_limits"]

MB = 1024**2


@dataclass(frozen=True)
class InputLimits:
    max_image_pixels: int = 64_000_000
    max_archive_files: int = 200_000
    max_archive_bytes: int = 20_480 * MB
    max_compression_ratio: float = 200.0
    max_upload_bytes: int = 2_000 * MB

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> InputLimits:
        """Defaults overridden by any ``WARMSTART_MAX_*`` variable that is set."""
        environ = os.environ if environ is None else environ
        defaults = cls()

        def read(variable: str, default: float, scale: int = 1) -> float:
            raw = environ.get(variable)
            if raw is None or raw.strip() == "":
                return default * scale
            try:
                value = float(raw)
            except ValueError:
                value = -1.0
            if value <= 0:
                raise WarmstartError(f"{variable} must be a positive number, got '{raw}'.")
            return value * scale

        return cls(
            max_image_pixels=int(read("WARMSTART_MAX_IMAGE_PIXELS", defaults.max_image_pixels)),
            max_archive_files=int(read("WARMSTART_MAX_ARCHIVE_FILES", defaults.max_archive_files)),
            max_archive_bytes=int(read("WARMSTART_MAX_ARCHIVE_MB", defaults.max_archive_bytes / MB, MB)),
            max_compression_ratio=read("WARMSTART_MAX_COMPRESSION", defaults.max_compression_ratio),
            max_upload_bytes=int(read("WARMSTART_MAX_UPLOAD_MB", defaults.max_upload_bytes / MB, MB)),
        )

    def check_upload(self, name: str, size: int) -> None:
        """Refuse one uploaded file above the upload limit, naming it."""
        if size > self.max_upload_bytes:
            raise WarmstartError(
                f"'{name}' is {size / MB:,.1f} MB, above the upload limit of {self.max_upload_bytes / MB:,.0f} MB "
                "(WARMSTART_MAX_UPLOAD_MB)."
            )


def input_limits() -> InputLimits:
    """The limits in force now (read from the environment on every call, so tests can change them)."""
    return InputLimits.from_env()
