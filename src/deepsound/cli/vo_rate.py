"""``deepsound vo-rate PATH…``: how many soundtracks hold speech — the *speech rate*.

The paper's point is fewer voice-overs in generated audio. This report makes
that measurable on any folder of results (or of the step-1 intermediates, to
compare before and after): the real speech detector runs on each audio or
video file and the share of files with speech is printed with each file's
speech ratio. Without the original soundtracks to compare with, every voice
counts, so this speech rate bounds the voice-over rate from above (``deepsound
evaluate`` reports the voice-over rate itself, against a reference). Unreadable
files are listed, not fatal.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from deepsound.cli.text import plain
from deepsound.errors import ConfigError, MediaError
from deepsound.media.kinds import AUDIO_SUFFIXES, VIDEO_SUFFIXES
from deepsound.steps.voice_over import speech_heard


@dataclass
class FileSpeech:
    path: str
    speech_ratio: float | None
    segments: int = 0
    error: str | None = None

    @property
    def has_speech(self) -> bool:
        return speech_heard(self.segments > 0, 0.0, self.speech_ratio or 0.0)


def collect_files(paths: list[Path], pattern: str | None = None) -> list[Path]:
    """Files given directly, plus the audio/video files of given folders (sorted, optionally globbed)."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(path.glob(pattern) if pattern else path.iterdir())
            files += [p for p in found if p.suffix.lower() in AUDIO_SUFFIXES + VIDEO_SUFFIXES]
        elif path.exists():
            files.append(path)
        else:
            if path.is_symlink():  # a loop or a broken link: say which
                from deepsound.media._open import check_input_path

                check_input_path(path)
            raise ConfigError(f"{path}: no such file or folder")
    if not files:
        raise ConfigError("no audio or video files found in " + ", ".join(str(p) for p in paths))
    return files


def measure(files: list[Path], detector) -> list[FileSpeech]:  # noqa: ANN001
    from deepsound.media import read_audio

    rows = []
    for path in files:
        try:
            report = detector.detect(read_audio(path))
        except MediaError as exc:
            rows.append(FileSpeech(str(path), None, error=str(exc)))
            continue
        rows.append(FileSpeech(str(path), round(report.speech_ratio, 4), len(report.segments)))
    return rows


def speech_rate(rows: list[FileSpeech]) -> float | None:
    """Share of readable files in which speech was heard."""
    readable = [r for r in rows if r.error is None]
    return sum(r.has_speech for r in readable) / len(readable) if readable else None


def vo_rate_command(
    paths: Annotated[list[Path], typer.Argument(help="Audio/video files or folders of them.")],
    pattern: Annotated[
        str | None, typer.Option(help="Glob inside folders, e.g. '*.step1.wav' or '*[!s].wav'.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    speech: Annotated[
        str | None,
        typer.Option(
            help="Speech detector: staged, silero, ten, fused, vocal-stem. (default: the configured one)"
        ),
    ] = None,
    config_file: Annotated[Path | None, typer.Option("--config", help="TOML file of settings.")] = None,
) -> None:
    """Speech rate: the share of soundtracks in which speech is heard (the configured speech detector)."""
    from deepsound.cli.options import settings_from_values
    from deepsound.registry import Components

    settings = settings_from_values({"speech": speech, "config_file": config_file})
    rows = measure(collect_files(paths, pattern), Components(settings.pipeline).speech)
    rate = speech_rate(rows)
    if as_json:
        typer.echo(json.dumps({"speech_rate": rate, "files": [vars(r) for r in rows]}, indent=2))
        return
    table = Table(title=f"speech rate: {'n/a' if rate is None else f'{rate:.1%}'} of {len(rows)} files")
    for column in ("file", "speech", "speech ratio", "segments"):
        table.add_column(column)
    for r in rows:
        if r.error:
            table.add_row(plain(Path(r.path).name), "error", plain(r.error), "")
        else:
            table.add_row(
                plain(Path(r.path).name),
                "yes" if r.has_speech else "no",
                f"{r.speech_ratio:.3f}",
                str(r.segments),
            )
    Console().print(table)
