"""The ``deepsound`` Typer app and what every command shares: one-line errors and logging.

Every user mistake (missing file, corrupt video, missing weights offline, unwritable
folder) ends as one line on stderr and a non-zero exit code, never a stack trace; see
:mod:`deepsound.errors`. Commands live one per module beside this one.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.logging import RichHandler

from deepsound.cli.text import error_line
from deepsound.errors import DeepSoundError

app = typer.Typer(
    name="deepsound",
    help="Turn a silent video into a clean soundtrack, step by step (DeepSound-V1).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err_console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])


def user_errors(func: F) -> F:
    """Turn :class:`DeepSoundError` into one red line and its exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except DeepSoundError as exc:
            err_console.print(error_line(exc), highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/yellow]")
            raise typer.Exit(130) from None

    # the signature is read through ``__wrapped__``: a command with pipeline options keeps following
    # the registry (see deepsound.cli.options) instead of a copy taken now
    wrapper.__dict__.pop("__signature__", None)
    return wrapper  # type: ignore[return-value]


def setup_logging(quiet: bool, verbose: bool = False) -> None:
    level = logging.WARNING if quiet else (logging.DEBUG if verbose else logging.INFO)
    logging.basicConfig(
        level=level,
        format="%(message)s",
        handlers=[RichHandler(console=err_console, show_path=False, show_time=False)],
        force=True,
    )
