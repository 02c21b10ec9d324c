"""``deepsound config show``: the effective settings as TOML that ``--config`` reads back."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from deepsound.cli.app import user_errors
from deepsound.cli.options import pipeline_options
from deepsound.settings import PRESET_HELP, Settings, dump_toml

config_app = typer.Typer(no_args_is_help=True, help="Show the effective configuration and the presets.")


@config_app.command("show")
@user_errors
@pipeline_options
def show_command(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the TOML to this file.")
    ] = None,
    *,
    settings: Settings,
) -> None:
    """Print the settings a run with these options would use (preset ⊕ --config ⊕ options)."""
    from deepsound.files import atomic_output

    text = dump_toml(settings)
    if output is not None:
        with atomic_output(output) as tmp:
            tmp.write_text(text)
    typer.echo(text, nl=False)


@config_app.command("presets")
@user_errors
def presets_command() -> None:
    """List the presets and what each sets."""
    from deepsound.settings import load_settings

    for name, summary in PRESET_HELP.items():
        typer.echo(f"# preset {name}: {summary}")
        typer.echo(dump_toml(load_settings(name)))
