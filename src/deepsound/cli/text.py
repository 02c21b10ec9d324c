"""Putting user-supplied text on the terminal literally.

rich reads ``[...]`` as markup: a file named ``x[/]y.mp4`` would end in a ``MarkupError``
traceback, and ``[take 2]`` or ``[pipeline]`` would silently vanish from a message. Every
string that can hold a path, a prompt, a setting's table name or an error message goes
through :func:`esc` (inside markup we write ourselves) or :func:`plain` (a whole line), so
that only the project's own styling is ever interpreted.
"""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from rich.text import Text


def esc(value: Any) -> str:
    """``value`` as text that rich prints as is, inside markup of our own."""
    return escape(str(value))


def plain(value: Any) -> Text:
    """A whole line (or table cell) of user text: a :class:`Text`, which rich never parses."""
    return Text(str(value))


def error_line(message: Any) -> Text:
    """``error: <message>`` with only the label styled."""
    return Text.assemble(("error:", "red"), " ", str(message))
