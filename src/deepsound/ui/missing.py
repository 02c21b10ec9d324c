"""What the page says when it serves without some weight files (``deepsound ui --offline``).

Offline, a missing MMAudio checkpoint must not keep a user from seeing the page, nor from
the tabs that do not need it: the page serves, names the missing files once at the top (a
short list with sizes and the one command that fetches them) and each run that needs one of
them answers with one short line instead of a screen of URLs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from deepsound.weights.messages import download_size
from deepsound.weights.resolve import offline_reason

if TYPE_CHECKING:
    from deepsound.pipeline import Pipeline
    from deepsound.weights.registry import WeightFile

SHOWN = 6  # files listed by name; the rest are counted


def missing_offline(pipeline: Pipeline) -> list[WeightFile]:
    """The files the page's pipeline needs and cannot fetch (offline only: online they download)."""
    return pipeline.components.missing_files() if offline_reason(pipeline.config.offline) else []


def _size(size: int | None) -> str:
    return "?" if size is None else (f"{size / 1e9:.2f} GB" if size >= 10_000_000 else f"{size / 1e3:.0f} KB")


def banner_markdown(missing: list[WeightFile], offline: str) -> str:
    """The notice at the top of the page; empty when nothing is missing."""
    if not missing:
        return ""
    rows = [f"- `{e.relpath}` ({_size(e.size)})" for e in missing[:SHOWN]]
    if len(missing) > SHOWN:
        rows.append(f"- and {len(missing) - SHOWN} more")
    command = "deepsound weights download " + " ".join(e.name for e in missing)
    return "\n".join(
        [
            f"**{len(missing)} weight file{'s' if len(missing) != 1 else ''} missing** "
            f"({_size(download_size(missing))}; downloads are off: {offline}). Generate needs them; "
            "Remove voice and Screen work with what is here.",
            "",
            *rows,
            "",
            f"To add them, on a machine that is online: `{command}`, then copy the files into this "
            "server's weights folder and restart it.",
        ]
    )


def short_weights_message(text: str) -> str:
    """One line from a multi-line missing-weights message: the summary and the first files, no URLs."""
    lines = [line for line in text.splitlines() if line.strip()]
    files = [line.split()[0] for line in lines[1:] if line.startswith("  ")]
    head = lines[0].rstrip(":")
    if not files:
        return head
    shown = ", ".join(files[:3]) + (f" and {len(files) - 3} more" if len(files) > 3 else "")
    return f"{head}: {shown}"
