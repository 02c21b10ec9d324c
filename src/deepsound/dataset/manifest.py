"""The JSONL manifest: one conversation per line, the format the fine-tuning reads.

The layout follows the LLaVA / VideoLLaMA2 training files (``conversations``
of ``human`` and ``gpt`` turns, media placeholders ``<video>`` and ``<audio>``
at the head of the question), with the paths of the media beside them:
``video`` is the input clip, ``audio`` the generated soundtrack that step 2
judges (relative paths are relative to the manifest's folder). ``system`` is
the system prompt the sample was written for (the pipeline's judge asks with
it), ``label`` the chosen option for step-2 samples and ``evidence`` the
measurements the label came from.

Reading checks every line before any training starts: a line that is not JSON,
lacks a field, or names a file that does not exist stops the run with the
file, the line number and what is wrong.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepsound.errors import ConfigError

TASKS = ("step0_plan", "step2_cot", "step2_qa")
VIDEO_TOKEN = "<video>"
AUDIO_TOKEN = "<audio>"


class DatasetError(ConfigError):
    """A dataset that cannot be used as it is (bad line, missing file)."""


@dataclass
class Sample:
    """One conversation ready to encode: media, question, target answer."""

    id: str
    clip: str
    task: str
    video: Path
    audio: Path | None
    question: str
    answer: str
    system: str | None = None
    label: str | None = None  # "A" / "B" for step-2 samples
    line: int = 0

    @property
    def has_voice_over(self) -> bool | None:
        return None if self.label is None else self.label == "A"


def sample_row(
    *,
    clip: str,
    task: str,
    video: str,
    audio: str | None,
    question: str,
    answer: str,
    system: str | None,
    label: str | None = None,
    evidence: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One manifest line (a dict) in the conversation format."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}")
    head = VIDEO_TOKEN + "\n" + (AUDIO_TOKEN + "\n" if audio is not None else "")
    row: dict[str, Any] = {
        "id": f"{clip}/{task}",
        "clip": clip,
        "task": task,
        "video": video,
        "audio": audio,
        "system": system,
        "conversations": [{"from": "human", "value": head + question}, {"from": "gpt", "value": answer}],
    }
    if label is not None:
        row["label"] = label
    if evidence is not None:
        row["evidence"] = evidence
    return row


def _strip_placeholders(text: str) -> str:
    for token in (VIDEO_TOKEN, AUDIO_TOKEN):
        text = text.replace(token + "\n", "").replace(token, "")
    return text.strip()


def _sample(row: Any, root: Path, where: str, line: int) -> Sample:
    if not isinstance(row, dict):
        raise DatasetError(f"{where}: a line must be a JSON object")
    for key in ("id", "task", "video", "conversations"):
        if key not in row:
            raise DatasetError(f"{where}: missing field {key!r}")
    turns = row["conversations"]
    if (
        not isinstance(turns, list)
        or len(turns) < 2
        or not all(isinstance(t, dict) and "value" in t for t in turns[:2])
    ):
        raise DatasetError(f"{where}: 'conversations' must hold a human turn and a gpt turn")
    media: dict[str, Path | None] = {}
    for key in ("video", "audio"):
        value = row.get(key)
        if value is None:
            media[key] = None
            continue
        path = Path(value).expanduser()
        path = path if path.is_absolute() else root / path
        if not path.is_file():
            raise DatasetError(f"{where}: {key} file {value} does not exist")
        media[key] = path
    if media["video"] is None:
        raise DatasetError(f"{where}: 'video' must name a file")
    label = row.get("label")
    if label is not None and label not in ("A", "B"):
        raise DatasetError(f"{where}: label must be 'A' or 'B', got {label!r}")
    return Sample(
        id=str(row["id"]),
        clip=str(row.get("clip") or row["id"]),
        task=str(row["task"]),
        video=media["video"],
        audio=media["audio"],
        question=_strip_placeholders(str(turns[0]["value"])),
        answer=str(turns[1]["value"]),
        system=row.get("system"),
        label=label,
        line=line,
    )


def read_manifest(path: Path | str, tasks: tuple[str, ...] | None = None) -> list[Sample]:
    """Every sample of a manifest (optionally only ``tasks``), each line checked; fails on the first bad one."""
    path = Path(path)
    if path.is_dir():
        path = path / "manifest.jsonl"
    if not path.is_file():
        raise DatasetError(f"{path}: no such dataset manifest")
    samples: list[Sample] = []
    with path.open(encoding="utf-8") as handle:
        for number, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            where = f"{path}:{number}"
            try:
                row = json.loads(text)
            except json.JSONDecodeError as exc:
                raise DatasetError(f"{where}: not valid JSON ({exc.msg})") from None
            sample = _sample(row, path.parent, where, number)
            if tasks is None or sample.task in tasks:
                samples.append(sample)
    if not samples:
        which = f" of task {', '.join(tasks)}" if tasks else ""
        raise DatasetError(f"{path}: holds no samples{which}")
    return samples
