"""``deepsound ui``: a web page over the same :class:`~deepsound.pipeline.Pipeline` as the CLI.

Needs the ``ui`` extra (gradio). Importing this package turns gradio's usage
analytics off (unless the environment already decided), before gradio is
imported anywhere below it: a local tool has no business phoning home.
"""

from __future__ import annotations

import os
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

__all__ = ["UiSettings", "WebUI"]


def __getattr__(name: str) -> Any:
    if name == "WebUI":
        from deepsound.ui.app import WebUI

        return WebUI
    if name == "UiSettings":
        from deepsound.ui.settings import UiSettings

        return UiSettings
    raise AttributeError(name)
