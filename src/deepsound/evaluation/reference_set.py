"""The paper's VO-Free reference set: the test set's own audio with its voice-over removed by
the method itself (step 2 judges, step 3 removes the voice), built once and reused.

The paper pairs its step-by-step settings with this set, not with the original audio
(Ori-Set): a judge that removes voice-over from generated audio is compared against
references from which the same judge and separator removed it. For each reference clip
the configured judge hears the clip's own audio (with its video where there is one, as
step 2 sees a generated soundtrack); where it finds voice-over the configured separator
keeps the mix minus the vocals, otherwise the audio is kept as decoded (float32 WAV, so
the evaluation reads the very samples it would read from the original file).

Layout of the folder (it is evaluated as it is: only ``<stem>.wav`` files sit at its top):
``<stem>.wav``; ``removed/<stem>.vocals.wav`` where voice was removed; ``clips/<stem>.json``
(the verdict with its evidence, the judge, MLLM calls and seconds, the source's sha256:
written last, the clip's mark of completion) and ``manifest.json`` (the method's components,
every clip's record, the failures with their reasons, the voice-over rate of the set). A clip
is redone only when its source changed or the judge or separator settings did.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepsound.errors import ConfigError, DeepSoundError
from deepsound.files import ensure_dir, write_json

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
KIND = "deepsound vo-free reference set"
VERSION = 1


@dataclass(frozen=True)
class ReferenceClip:
    stem: str
    source: str  # the file whose audio is the reference (an audio file or a video)
    video: str | None  # what the judge sees (None: audio alone)


def reference_clips(reference: Path, videos: Path | None = None) -> list[ReferenceClip]:
    """The clips of a reference folder (audio or videos with sound), paired with videos by stem."""
    from deepsound.evaluation.sources import VIDEO_SUFFIXES, discover

    found = discover(Path(reference), prefer="video")
    by_stem: dict[str, Path] = {}
    if videos is not None:
        by_stem = {s.stem: s.path for s in discover(Path(videos), prefer="video").sources}
    out = []
    for src in found.sources:
        own = src.path if src.path.suffix.lower() in VIDEO_SUFFIXES else None
        video = own or by_stem.get(src.stem)
        out.append(ReferenceClip(src.stem, str(src.path.resolve()), str(video.resolve()) if video else None))
    return out


def method_of(config: Any) -> dict[str, Any]:
    """What decides a clip's VO-Free audio: the judge (and the models behind it) and the separator."""
    from deepsound.config import to_plain

    plain = to_plain(config)
    return {
        "judge": plain["judge"],
        "mllm": plain["mllm"],
        "speech": plain["speech"],
        "separator": plain["separator"],
        "version": VERSION,
    }


def fingerprint_of(method: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(method, sort_keys=True, default=str).encode()).hexdigest()[:16]


class ReferenceJob:
    """Judge and clean one reference clip; the same object runs in-process or in a Ray worker."""

    def __init__(self, out: Path, pipeline: Any, fingerprint: str) -> None:
        self.out, self.pipeline, self.fingerprint = str(out), pipeline, fingerprint
        self._components: Any = None

    def record_path(self, clip: ReferenceClip) -> Path:
        return Path(self.out) / "clips" / f"{clip.stem}.json"

    def key(self, clip: ReferenceClip) -> str:
        return clip.stem

    def is_done(self, clip: ReferenceClip) -> bool:
        record = read_record(self.record_path(clip))
        return (
            bool(record)
            and record.get("fingerprint") == self.fingerprint
            and (record.get("source_sha256") == _sha256(Path(clip.source)))
        )

    def setup(self) -> None:
        pipeline = self.pipeline if hasattr(self.pipeline, "components") else self.pipeline()
        self._components = pipeline.components

    def run(self, clip: ReferenceClip) -> dict[str, Any]:
        from deepsound import media

        if self._components is None:
            self.setup()
        started = time.perf_counter()
        out = Path(self.out)
        audio = media.read_audio(clip.source)
        verdict = self._components.judge.judge(Path(clip.video) if clip.video else None, audio)
        kept, removed = audio, None
        if verdict.has_voice_over:
            separation = self._components.separator.separate(audio)
            kept = separation.instrumental
            removed = ensure_dir(out / "removed") / f"{clip.stem}.vocals.wav"
            media.write_audio(removed, separation.vocals)
        media.write_audio(out / f"{clip.stem}.wav", kept)
        record = {
            "stem": clip.stem,
            "source": clip.source,
            "source_sha256": _sha256(Path(clip.source)),
            "video": clip.video,
            "has_voice_over": verdict.has_voice_over,
            "judge": verdict.judge,
            "evidence": verdict.evidence,
            "cot": verdict.cot_text,
            "mllm_calls": len(verdict.mllm_calls),
            "voice_removed": removed is not None,
            "separator": self._components.separator.name if removed is not None else None,
            "output": f"{clip.stem}.wav",
            "removed": str(removed.relative_to(out)) if removed is not None else None,
            "seconds": round(time.perf_counter() - started, 3),
            "fingerprint": self.fingerprint,
        }
        write_json(ensure_dir(out / "clips") / f"{clip.stem}.json", record)  # last: the mark
        return {"has_voice_over": verdict.has_voice_over}


_DIGESTS: dict[tuple[str, float, int], str] = {}


def _sha256(path: Path) -> str:
    from deepsound.evaluation.cache import sha256_of

    stat = path.stat()
    key = (str(path), stat.st_mtime, stat.st_size)
    if key not in _DIGESTS:
        _DIGESTS[key] = sha256_of(path)
    return _DIGESTS[key]


def read_record(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def build_reference_set(
    reference: Path,
    out: Path,
    pipeline: Any,
    *,
    videos: Path | None = None,
    ray: Any = None,
    on_clip: Callable[[str], None] | None = None,
    console: Any = None,
    quiet: bool = True,
) -> dict[str, Any]:
    """Build (or bring up to date) the VO-Free set of ``reference`` in ``out``; returns its manifest.

    ``pipeline`` is a :class:`~deepsound.pipeline.Pipeline` (its configured judge and separator
    are the method's) or, with ``ray`` (:class:`~deepsound.distributed.RaySettings`), a
    pipeline with nothing built or a factory, which every worker makes for itself.
    """
    reference, out = Path(reference), Path(out)
    if not reference.is_dir():
        raise ConfigError(f"{reference}: the reference is not a folder")
    if out.resolve() == reference.resolve():
        raise ConfigError(f"{out}: the VO-Free set must not be written into its reference folder")
    config = pipeline.config if hasattr(pipeline, "config") else pipeline().config
    method = method_of(config)
    fingerprint = fingerprint_of(method)
    clips = reference_clips(reference, videos)
    ensure_dir(out)
    job = ReferenceJob(out, pipeline, fingerprint)
    failures: dict[str, str] = {}
    started = time.perf_counter()
    if ray is not None:
        from deepsound.distributed.tasks import run_on_ray

        summary = run_on_ray(job, clips, ray, label="reference", console=console, quiet=quiet)
        failures = {o.key: o.reason for o in summary.outcomes if o.status == "failed"}
    else:
        for clip in clips:
            if not job.is_done(clip):
                try:
                    job.run(clip)
                except (DeepSoundError, OSError, ValueError, RuntimeError) as exc:
                    log.warning("%s: %s", Path(clip.source).name, exc)
                    failures[clip.stem] = str(exc)
            if on_clip is not None:
                on_clip(clip.stem)
    records = {c.stem: r for c in clips if c.stem not in failures and (r := read_record(job.record_path(c)))}
    judged = [r for r in records.values() if r.get("has_voice_over") is not None]
    manifest = {
        "kind": KIND,
        "built_from": str(reference.resolve()),
        "videos": str(videos.resolve()) if videos else None,
        "method": method,
        "fingerprint": fingerprint,
        "counts": {
            "clips": len(clips),
            "in_set": len(records),
            "voice_over": sum(bool(r.get("has_voice_over")) for r in records.values()),
            "failed": len(failures),
            "mllm_calls": sum(int(r.get("mllm_calls") or 0) for r in records.values()),
        },
        "voice_over_rate": (sum(bool(r["has_voice_over"]) for r in judged) / len(judged)) if judged else None,
        "seconds_this_run": round(time.perf_counter() - started, 3),
        "failures": [{"stem": s, "reason": r} for s, r in sorted(failures.items())],
        "clips": records,
    }
    for stale in out.glob("*.wav"):  # a clip no longer in the reference leaves the set
        if stale.stem not in records:
            stale.unlink()
    write_json(out / MANIFEST, manifest)
    if not records:
        raise DeepSoundError(f"{reference}: no reference clip could be judged; see {out / MANIFEST}")
    return manifest


def read_manifest(folder: Path) -> dict[str, Any]:
    """The manifest of a VO-Free set; a clear error for a folder that is not one."""
    data = read_record(Path(folder) / MANIFEST)
    if not data or data.get("kind") != KIND:
        raise ConfigError(f"{folder}: not a VO-Free reference set (no {MANIFEST}; build one with "
                          "`deepsound reference build`)")  # fmt: skip
    return data
