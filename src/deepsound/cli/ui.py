"""``deepsound ui``: serve the step-by-step web page (needs the ``ui`` extra: gradio).

Takes the same pipeline options as ``generate`` (they set the models and the
page's initial run options) plus where to listen and the limits that keep a
shared server healthy. Models load on the first run that needs them and stay
for the life of the process.
"""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from deepsound.cli.app import setup_logging
from deepsound.cli.options import build_pipeline, pipeline_options
from deepsound.errors import ConfigError
from deepsound.settings import Settings


@pipeline_options
def ui_command(
    host: Annotated[
        str, typer.Option(help="Address to listen on (0.0.0.0 lets other machines in).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 7860,
    share: Annotated[
        bool, typer.Option(help="Also make a public gradio.live link (off by default).")
    ] = False,
    variants: Annotated[
        str,
        typer.Option(
            help="Variants of the generator the page offers (MMAudio's variants), comma-separated, or 'all'; "
            "each loads on first use."
        ),
    ] = "",
    max_seconds: Annotated[float, typer.Option(help="Longest input accepted, in seconds.")] = 600.0,
    max_upload_mb: Annotated[int, typer.Option(help="Largest upload accepted, in MB.")] = 500,
    session_ttl: Annotated[
        float, typer.Option(help="Seconds after which an idle session's files go.")
    ] = 3600.0,
    concurrency: Annotated[int, typer.Option(help="Runs at once (they share the models).", min=1)] = 1,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only warnings and errors.")] = False,
    *,
    settings: Settings,
) -> None:
    """Serve a web page: upload a video, watch the steps, hear and download every result."""
    setup_logging(quiet)
    from deepsound.input_check import check_port

    check_port(port)
    try:
        from deepsound.ui import UiSettings, WebUI
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise ConfigError(
            f"the web page needs gradio ({exc}); install it with: pip install 'deepsound[ui]'"
        ) from None
    from deepsound.ui.models import choice_fields

    options = settings.run.replace(write_video=True, keep_intermediates=True)  # the page shows every file
    from deepsound.pipeline import Pipeline
    from deepsound.ui.missing import missing_offline

    # offline without some weights the page still serves: it lists them, and the tabs that
    # do not need them work
    bare = Pipeline(settings.pipeline)
    pipeline = bare if missing_offline(bare) else build_pipeline(settings)
    section = settings.pipeline.generator
    fields = choice_fields(section.name)  # the generator's variant-like setting, from its registry entry
    offered = None
    if fields:
        known = tuple(fields[0].metadata["choices"])
        offered = parse_variants(variants, getattr(section.selected, fields[0].name), known)
    elif variants.strip():
        raise ConfigError(f"the {section.name} generator has no variants to offer")
    settings = UiSettings(
        host=host, port=port, share=share, defaults=options, variants=offered, max_input_seconds=max_seconds,
        max_upload_mb=max_upload_mb, session_ttl_seconds=session_ttl, concurrency=concurrency,
    )  # fmt: skip
    logging.getLogger("httpx").setLevel(logging.WARNING)  # gradio's own start-up checks of the local address
    page = WebUI(pipeline, settings)
    try:
        page.launch(block=True)
    except OSError as exc:  # the port is taken, the address is not this machine's
        page.close()
        raise ConfigError(f"cannot serve on {host}:{port}: {exc}") from None


def parse_variants(text: str, base: str, known: tuple[str, ...]) -> tuple[str, ...]:
    """The page's variant choices: the configured one first, then those asked for."""
    if not text.strip():
        return (base,)
    asked = list(known) if text.strip() == "all" else [v.strip() for v in text.split(",") if v.strip()]
    unknown = [v for v in asked if v not in known]
    if unknown:
        raise ConfigError(f"unknown variant(s) {', '.join(unknown)}; choose from: {', '.join(known)}")
    return tuple(dict.fromkeys([base, *asked]))
