"""Giving freed memory back to the system after a model is released.

Why a module of its own: both the residency policy and MMAudio's staged parts release models and
need the same step, and models may not import the pipeline-level modules.
"""

from __future__ import annotations

import ctypes
import sys


def trim_heap() -> None:
    """Hand freed heap pages back to the system (glibc keeps them for reuse otherwise, and a
    released model would still count in the process's memory)."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):  # not glibc (musl): nothing to trim
            pass
