"""``deepsound dataset build``: videos with their own soundtrack → labelled step-0 and step-2 samples.

For each clip: step 1 generates audio for it (the configured generator, as the
pipeline runs it), the speech detector listens to the generated audio and to
the clip's own soundtrack over the same stretch, the separator (when enabled)
measures the vocal share, and :func:`~deepsound.dataset.evidence.label_clip`
turns the readings into a label. Nobody annotates anything.

Each finished clip leaves ``clips/<id>.json`` (written last, atomically: it
marks the clip as done) and ``audio/<id>.wav``; a re-run skips done clips, so
an interrupted build resumes. ``manifest.jsonl`` and ``summary.json`` are then
rewritten from all clip records in the folder. A clip without a soundtrack of
its own cannot be labelled (there is nothing to compare with) and is skipped
with that reason, as is a clip that cannot be decoded.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepsound import media
from deepsound.dataset.cot import cot_answer, plan_answer, qa_answer
from deepsound.dataset.evidence import ClipEvidence, LabelRules, label_clip
from deepsound.dataset.manifest import sample_row
from deepsound.errors import ConfigError, MediaError
from deepsound.files import atomic_output, ensure_dir, write_json
from deepsound.interfaces import DEFAULT_DURATION, GenerationRequest
from deepsound.steps.generate import generate_windowed
from deepsound.steps.prompts import (
    PLAN_QUESTION,
    PLAN_SYSTEM_PROMPT,
    VOICE_OVER_QUESTION,
    VOICE_OVER_SYSTEM_PROMPT,
)
from deepsound.steps.stem_speech import check_consumer

log = logging.getLogger(__name__)

SAMPLE_KINDS = {"plan": "step0_plan", "cot": "step2_cot", "qa": "step2_qa"}
CAPTION_QUESTION = "Describe in one sentence what is seen in the video."


@dataclass
class BuildSettings:
    """What to generate and write; the generation defaults are the pipeline's."""

    kinds: tuple[str, ...] = ("plan", "cot", "qa")
    duration: float = DEFAULT_DURATION
    seed: int = 42
    num_steps: int = 25
    cfg_strength: float = 4.5
    prompt: str = ""
    window: float | None = None
    separator: bool = True  # measure the vocal share (loads the separator)
    caption: bool = False  # ask the MLLM to describe the pictures for the CoT's caption
    limit: int | None = None  # stop once this many clips are in the dataset
    rules: LabelRules = field(default_factory=LabelRules)

    def __post_init__(self) -> None:
        unknown = [k for k in self.kinds if k not in SAMPLE_KINDS]
        if unknown or not self.kinds:
            raise ConfigError(
                f"unknown sample kind(s) {', '.join(unknown) or '(none given)'}; choose from plan, cot, qa"
            )
        if not self.duration > 0:
            raise ConfigError(f"duration must be positive, got {self.duration}")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"--limit must be at least 1, got {self.limit}")


@dataclass
class ClipOutcome:
    video: str
    status: str  # "built" | "resumed" | "skipped"
    clip: str | None = None
    reason: str | None = None
    label: str | None = None


def clip_id(video: Path) -> str:
    """A readable name that follows the file, not its place: the stem and a hash of its size and first MiB.

    A dataset folder so stays resumable after the videos move, and one video
    listed twice (or copied) is one clip, not two samples that would straddle
    the training and held-out split.
    """
    path = Path(video)
    digest = hashlib.sha1()
    try:
        with path.open("rb") as handle:
            digest.update(str(path.stat().st_size).encode())
            digest.update(handle.read(1 << 20))
    except OSError:
        digest.update(str(path.resolve()).encode())  # unreadable: probing it will report why
    stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in path.stem)[:60]
    return f"{stem}-{digest.hexdigest()[:8]}"


class DatasetBuilder:
    """Runs step 1 and the measurements over videos; components come from :class:`~deepsound.registry.Components`."""

    def __init__(self, components: Any, settings: BuildSettings | None = None) -> None:
        self.components = components
        self.settings = settings or BuildSettings()
        check_consumer(components, self.settings.separator, "a dataset built without the separator")

    # ------------------------------------------------------------------ one clip
    def measure(self, video: Path, audio_path: Path) -> dict[str, Any]:
        """Generate, listen, label; write the generated audio; return the clip record (not yet saved)."""
        s = self.settings
        info = media.probe(video)
        if not info.has_video:
            raise MediaError(f"{video}: has no video stream")
        if not info.has_audio:
            raise _Skip("no soundtrack of its own: nothing to tell a voice-over from on-screen speech by")
        duration = min(s.duration, info.duration) if info.duration > 0 else s.duration
        original = media.read_audio(video)
        original = original.fit_length(min(original.num_samples, int(round(duration * original.sample_rate))))
        generator = self.components.generator
        request = GenerationRequest(
            video=video, prompt=s.prompt, duration=duration, seed=s.seed,
            num_steps=s.num_steps, cfg_strength=s.cfg_strength,
        )  # fmt: skip
        if s.window is not None and duration > s.window:
            generated = generate_windowed(generator, request, s.window)
        else:
            generated = generator.generate(request)
        generated = generated.fit_length(int(round(duration * generated.sample_rate)))
        speech = self.components.speech
        gen_report, orig_report = speech.detect(generated), speech.detect(original)
        vocal_share, separator_name = None, None
        if s.separator:
            separator = self.components.separator
            separator_name = separator.name
            vocal_share = float(separator.separate(generated).evidence["vocals_energy_share"])
        caption = None
        if s.caption:
            caption = self.components.mllm.ask(CAPTION_QUESTION, video=video, step="caption").text
        evidence = label_clip(
            gen_report, orig_report, vocal_share=vocal_share, rules=s.rules,
            detector=speech.name, separator=separator_name,
        )  # fmt: skip
        media.write_audio(audio_path, generated)
        return {
            "video": str(Path(video).resolve()),
            "audio": audio_path.name,
            "duration": round(duration, 3),
            "generator": getattr(generator, "name", type(generator).__name__),
            "seed": s.seed,
            "caption": caption,
            "evidence": evidence.to_dict(),
        }

    def rows(self, clip: str, record: dict[str, Any]) -> list[dict[str, Any]]:
        """The manifest lines of one clip record, for the configured sample kinds."""
        evidence = ClipEvidence.from_dict(record["evidence"])
        audio = f"audio/{record['audio']}"
        common = {"clip": clip, "video": record["video"]}
        evidence_row = {**record["evidence"], "generator": record["generator"], "seed": record["seed"]}
        out = []
        for kind in self.settings.kinds:
            if kind == "plan":
                out.append(sample_row(
                    **common, task="step0_plan", audio=None, question=PLAN_QUESTION,
                    answer=plan_answer(), system=PLAN_SYSTEM_PROMPT,
                ))  # fmt: skip
            elif kind == "cot":
                out.append(sample_row(
                    **common, task="step2_cot", audio=audio, question=VOICE_OVER_QUESTION,
                    answer=cot_answer(evidence, record.get("caption")), system=VOICE_OVER_SYSTEM_PROMPT,
                    label=evidence.label, evidence=evidence_row,
                ))  # fmt: skip
            else:
                out.append(sample_row(
                    **common, task="step2_qa", audio=audio, question=VOICE_OVER_QUESTION,
                    answer=qa_answer(evidence), system=None, label=evidence.label, evidence=evidence_row,
                ))  # fmt: skip
        return out

    # ------------------------------------------------------------------ many clips
    def build(
        self, videos: list[Path], output: Path, on_clip: Callable[[ClipOutcome], None] | None = None
    ) -> dict[str, Any]:
        """Build (or resume) the dataset in ``output``; returns the summary that is also written."""
        started = time.perf_counter()
        output = ensure_dir(Path(output))
        clips_dir, audio_dir = ensure_dir(output / "clips"), ensure_dir(output / "audio")
        outcomes: list[ClipOutcome] = []
        in_dataset = len(list(clips_dir.glob("*.json")))
        for video in videos:
            if self.settings.limit is not None and in_dataset >= self.settings.limit:
                break
            clip = clip_id(video)
            record_path = clips_dir / f"{clip}.json"
            if record_path.is_file() and (audio_dir / f"{clip}.wav").is_file():
                outcome = ClipOutcome(str(video), "resumed", clip)
            else:
                try:
                    record = self.measure(Path(video), audio_dir / f"{clip}.wav")
                except (_Skip, MediaError) as exc:
                    outcome = ClipOutcome(str(video), "skipped", clip, reason=str(exc))
                    if on_clip is None:  # a listener reports each outcome itself: say it once
                        log.warning("skipped %s: %s", video, exc)
                else:
                    write_json(record_path, record)  # last: marks the clip as done
                    in_dataset += 1
                    outcome = ClipOutcome(str(video), "built", clip, label=record["evidence"]["label"])
            outcomes.append(outcome)
            if on_clip is not None:
                on_clip(outcome)
        summary = self.write_manifest(output, outcomes)
        summary["seconds"] = round(time.perf_counter() - started, 3)
        write_json(output / "summary.json", summary)
        return summary

    def write_manifest(self, output: Path, outcomes: list[ClipOutcome]) -> dict[str, Any]:
        """Rewrite ``manifest.jsonl`` from every clip record in the folder; return the label statistics."""
        records = {
            p.stem: json.loads(p.read_text(encoding="utf-8"))
            for p in sorted((output / "clips").glob("*.json"))
        }
        rows: list[dict[str, Any]] = []
        dropped = []
        for clip, record in records.items():
            if self.settings.rules.drop_inconsistent and record["evidence"]["consistent"] is False:
                dropped.append(clip)
                continue
            rows.extend(self.rows(clip, record))
        with atomic_output(output / "manifest.jsonl") as tmp:
            tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        return _summary(records, rows, dropped, outcomes)


class _Skip(Exception):
    """A clip that cannot become a sample, for a reason that is not an error."""


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def _summary(
    records: dict[str, dict[str, Any]],
    rows: list[dict[str, Any]],
    dropped: list[str],
    outcomes: list[ClipOutcome],
) -> dict[str, Any]:
    kept = {c: r["evidence"] for c, r in records.items() if c not in set(dropped)}
    labels = Counter(e["label"] for e in kept.values())
    by_label: dict[str, Any] = {}
    for label in ("A", "B"):
        chosen = [e for e in kept.values() if e["label"] == label]
        by_label[label] = {
            "clips": len(chosen),
            "mean_generated_speech_ratio": _mean([e["generated"]["speech_ratio"] for e in chosen]),
            "mean_original_speech_ratio": _mean([e["original"]["speech_ratio"] for e in chosen]),
            "mean_vocal_share": _mean([e["vocal_share"] for e in chosen if e["vocal_share"] is not None]),
        }
    consistency = Counter(
        "unmeasured" if e["consistent"] is None else ("agree" if e["consistent"] else "disagree")
        for e in (r["evidence"] for r in records.values())
    )
    total = sum(labels.values())
    return {
        "clips": len(kept),
        "samples": len(rows),
        "samples_by_task": dict(Counter(r["task"] for r in rows)),
        "labels": {"A": labels.get("A", 0), "B": labels.get("B", 0)},
        "voice_over_share": round(labels.get("A", 0) / total, 4) if total else None,
        "label_reasons": dict(Counter(e["reason"] for e in kept.values())),
        "by_label": by_label,
        "separator_vs_vad": dict(consistency),
        "dropped_inconsistent": dropped,
        "this_run": dict(Counter(o.status for o in outcomes)),
        "skipped": [{"video": o.video, "reason": o.reason} for o in outcomes if o.status == "skipped"],
    }
