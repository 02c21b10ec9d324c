"""``deepsound evaluate`` without the command line: folders in, caches, metrics and report out.

The order of work is av-benchmark's: extract (or reuse) the features of the
reference side (audio of GT, and the video models on ``--videos``) and of the
generated side, then compute the metrics from the caches alone. Each file is
read once and handed to every model that needs it; a file a model cannot
take (unreadable, too short for DeSync's 4.8 s windows, no audio stream) is
reported with the reason and left out of that model's cache, so no other
file's features ever stand in for it (av-benchmark's loaders silently use the
next file instead).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepsound.errors import ConfigError, DeepSoundError
from deepsound.evaluation.cache import FeatureCache, is_cache_folder, sha256_of
from deepsound.evaluation.extractors import (
    METRICS,
    Extractor,
    Settings,
    Source,
    build_extractor,
    build_offset_head,
    models_for,
)
from deepsound.evaluation.metrics import MetricResult, compute_metrics
from deepsound.evaluation.sources import discover
from deepsound.media.kinds import AUDIO_SUFFIXES, VIDEO_SUFFIXES

log = logging.getLogger(__name__)

# what a progress display is told: (label, total) to start a bar, then advance() per file
ProgressFactory = Callable[[str, int], Callable[[], None]]


@dataclass
class Failure:
    stem: str
    path: str
    model: str
    side: str
    reason: str


@dataclass
class Side:
    """One side of the comparison: where its files are and its cache."""

    name: str  # "generated" | "reference" | "videos"
    cache: FeatureCache
    sources: list[Source] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)


@dataclass
class Evaluation:
    metrics: MetricResult
    voice_over: dict[str, Any]
    failures: list[Failure]
    settings: dict[str, Any]
    counts: dict[str, int]
    extracted: dict[str, int]  # (side/model) -> files extracted this run (0 when all came from cache)
    seconds: float = 0.0
    reference_extra: dict[str, Any] = field(default_factory=dict)


def _quiet_progress(label: str, total: int) -> Callable[[], None]:
    return lambda: None


class ExtractorPool:
    """Models built on first use and kept for both sides (one PANNs for generated and reference)."""

    def __init__(self, settings: Settings, overrides: dict[tuple[str, str], Extractor] | None = None):
        self.settings = settings
        self._built: dict[tuple[str, str], Extractor] = dict(overrides or {})
        self._head = self._built.pop(("synchformer", "head"), None)  # type: ignore[arg-type]

    def get(self, name: str, modality: str) -> Extractor:
        if (name, modality) not in self._built:
            self._built[(name, modality)] = build_extractor(name, modality, self.settings)  # type: ignore[arg-type]
        return self._built[(name, modality)]

    def head(self) -> Any:
        if self._head is None:
            self._head = build_offset_head(self.settings)
        return self._head


def extract_side(side: Side, extractor: Extractor, progress: ProgressFactory, failures: list[Failure]) -> int:
    """Bring ``side``'s cache up to date for one model; returns how many files were extracted."""
    key = f"{extractor.name}_{extractor.modality}"
    digests = {}
    for src in side.sources:
        try:
            digests[src.stem] = file_digest(src)
        except OSError as exc:
            failures.append(Failure(src.stem, str(src.path), key, side.name, f"unreadable: {exc.strerror}"))
    todo = set(side.cache.stale(key, extractor.files, extractor.fingerprint(), digests))
    paths = {s.stem: s.path for s in side.sources}
    for stem, reason in side.cache.failures(key).items():
        failures.append(Failure(stem, str(paths[stem]), key, side.name, reason))
    work = [s for s in side.sources if s.stem in todo]
    if not work:
        side.cache.save()
        return 0
    advance = progress(f"{side.name}: {extractor.name} ({extractor.modality})", len(work))
    done = 0
    for src in work:
        try:
            entries = extractor.extract(src)
            missing = set(extractor.files) - set(entries)
            if missing:
                raise RuntimeError(f"{extractor.name} returned no {', '.join(sorted(missing))}")
        except (DeepSoundError, ValueError, RuntimeError, OSError, EOFError) as exc:
            reason = str(exc).replace(str(src.path), src.path.name) or type(exc).__name__
            log.warning("%s: skipped by %s: %s", src.path.name, extractor.name, reason)
            failures.append(Failure(src.stem, str(src.path), key, side.name, reason))
            side.cache.fail(key, extractor.files, src.stem, digests[src.stem], reason)
        else:
            side.cache.put(key, src.stem, digests[src.stem], entries)
            done += 1
        advance()
    side.cache.save()
    return done


_DIGESTS: dict[tuple[str, int, int], str] = {}


def file_digest(src: Source) -> str:
    """The file's sha256, remembered per (path, mtime, size) for the process: an experiment
    evaluates the same reference and video files once per row."""
    if src.silent_seconds is not None:
        return f"silence:{src.silent_seconds}"
    stat = src.path.stat()
    key = (str(src.path.resolve()), stat.st_mtime_ns, stat.st_size)
    if key not in _DIGESTS:
        _DIGESTS[key] = sha256_of(src.path)
    return _DIGESTS[key]


def evaluate(
    pred: Path,
    reference: Path,
    *,
    videos: Path | None = None,
    out_dir: Path,
    settings: Settings | None = None,
    metrics: list[str] | tuple[str, ...] = METRICS,
    pred_cache: Path | None = None,
    reference_cache: Path | None = None,
    extractors: dict[tuple[str, str], Extractor] | None = None,
    progress: ProgressFactory = _quiet_progress,
    stems: set[str] | None = None,
    video_cache: Path | None = None,
) -> Evaluation:
    """Compute the paper's metrics for the generated folder ``pred`` against ``reference``.

    ``reference`` is a folder of audio/video files or an av-benchmark cache
    folder (used as it is). ``videos`` (default: the reference folder when it
    holds videos) feeds ImageBind's and Synchformer's video branches.
    ``extractors`` supplies ready models by ``(name, modality)`` (tests, or a
    process that already holds them); ``("synchformer", "head")`` is the DeSync head.
    ``stems`` restricts the metrics to those clips (features of the others are still cached);
    ``video_cache`` keeps the video features apart from the reference's audio features.
    """
    start = time.perf_counter()
    settings = settings or Settings()
    metrics = list(metrics)
    needed = models_for(metrics)
    pool = ExtractorPool(settings, extractors)
    failures: list[Failure] = []
    extracted: dict[str, int] = {}

    gen, ref, video_side = plan_sides(
        pred, reference, videos, out_dir, pred_cache, reference_cache, video_cache
    )
    video_cache = video_side.cache
    for name, modality in needed:
        if modality == "video":
            if not video_side.sources:
                if not video_cache.get(pool_files(name)):
                    log.info("%s: no videos given; %s skipped", name, _video_metric(name))
                continue
            if ref.cache.foreign and ref.cache.get(pool_files(name)):
                continue  # the released cache has this model's video features: used as they are
            ext = pool.get(name, "video")
            extracted[f"videos/{name}"] = extract_side(video_side, ext, progress, failures)
            continue
        ext = pool.get(name, "audio")
        extracted[f"generated/{name}"] = extract_side(gen, ext, progress, failures)
        # av-benchmark runs ImageBind and Synchformer on the generated audio only; with videos we
        # also run them on the reference audio, for the reference's own IB-score and DeSync.
        if ref.sources and (name not in ("imagebind", "synchformer") or video_side.sources):
            extracted[f"reference/{name}"] = extract_side(ref, ext, progress, failures)

    reference_all = only({**video_cache.all(), **ref.cache.all()}, stems)
    generated_all = only(gen.cache.all(), stems)
    head = pool.head() if "desync" in metrics and reference_all.get("synchformer_video.pth") else None
    result = compute_metrics(generated_all, reference_all, head, skip=frozenset(METRICS) - set(metrics))
    for metric in [m for m in result.scores if m in METRICS and m not in metrics]:
        result.scores[metric] = None
    from deepsound.evaluation.voice_over import voice_over_summary

    vo = voice_over_summary(generated_all, reference_all) if "voice_over_rate" in metrics else {}
    reference_extra = _reference_scores(reference_all, head)
    return Evaluation(
        metrics=result,
        voice_over=vo,
        failures=failures,
        settings={
            "duration": settings.duration,
            "device": settings.device,
            "metrics": metrics,
            "generated": str(pred),
            "reference": str(reference),
            "videos": str(videos) if videos else None,
            "generated_cache": str(gen.cache.folder),
            "reference_cache": str(ref.cache.folder),
            "reference_cache_released": ref.cache.foreign,
        },
        counts={
            "generated_files": len(gen.sources),
            "reference_files": len(ref.sources) or len(ref.cache.get("passt_logits.pth")),
            "videos": len(video_side.sources),
            "skipped": len(failures),
        },
        extracted=extracted,
        seconds=round(time.perf_counter() - start, 3),
        reference_extra=reference_extra,
    )


def plan_sides(
    pred: Path,
    reference: Path,
    videos: Path | None,
    out_dir: Path,
    pred_cache: Path | None = None,
    reference_cache: Path | None = None,
    video_cache: Path | None = None,
) -> tuple[Side, Side, Side]:
    """The generated, reference and video sides of one evaluation, with their caches (also what a
    distributed extraction must fill, so that :func:`evaluate` then finds every file done)."""
    found = discover(pred)
    gen = Side("generated", FeatureCache(pred_cache or out_dir / "cache" / "generated"), found.sources)
    gen.ignored = found.ignored
    if is_cache_folder(reference) and not any(_media(p) for p in Path(reference).iterdir()):
        ref = Side("reference", FeatureCache(reference, read_only=True))
    else:
        ref_found = discover(reference)
        ref = Side("reference", FeatureCache(reference_cache or out_dir / "cache" / "reference"))
        ref.sources, ref.ignored = ref_found.sources, ref_found.ignored
    video_sources: list[Source] = []
    if videos is not None:
        video_sources = discover(videos, prefer="video").sources
    elif ref.sources and any(s.path.suffix.lower() in VIDEO_SUFFIXES for s in ref.sources):
        video_sources = discover(reference, prefer="video").sources
    # Video features live in the reference cache (as av-benchmark's extract_video.py writes them);
    # beside a released cache, which is never written to, in a cache of their own.
    # ``video_cache`` puts them in a cache of their own (an experiment's two reference sets share one).
    if video_cache is not None and video_sources:
        videos_side = FeatureCache(video_cache)
    elif ref.cache.foreign and video_sources:
        videos_side = FeatureCache(out_dir / "cache" / "videos")
    else:
        videos_side = ref.cache
    return gen, ref, Side("videos", videos_side, video_sources)


def only(caches: dict[str, dict[str, Any]], stems: set[str] | None) -> dict[str, dict[str, Any]]:
    """The caches restricted to ``stems`` (order kept), so that rows compare the same clips."""
    if stems is None:
        return caches
    return {name: {k: v for k, v in data.items() if k in stems} for name, data in caches.items()}


def _reference_scores(ref: dict[str, dict[str, Any]], head: Any) -> dict[str, Any]:
    """IB-score and DeSync of the reference audio against its own videos (the ceiling to compare with)."""
    audio = {k: ref[k] for k in ("imagebind_audio.pth", "synchformer_audio.pth") if k in ref}
    if not audio:
        return {}
    result = compute_metrics(audio, ref, head)
    out: dict[str, Any] = {k: result.scores.get(k) for k in ("ib_score", "desync")}
    out["desync_per_clip"] = {s: v["desync"] for s, v in result.per_clip.items() if "desync" in v}
    return out


def pool_files(name: str) -> str:
    return {"imagebind": "imagebind_video.pth", "synchformer": "synchformer_video.pth"}.get(name, "")


def _video_metric(name: str) -> str:
    return {"imagebind": "IB-score", "synchformer": "DeSync"}.get(name, name)


def _media(path: Path) -> bool:

    return path.suffix.lower() in AUDIO_SUFFIXES + VIDEO_SUFFIXES


def check_metrics(names: list[str]) -> list[str]:
    """Validate a user's --metrics list (comma-separated values allowed)."""
    out: list[str] = []
    for item in names:
        out += [n.strip() for n in item.split(",") if n.strip()]
    if not out:
        raise ConfigError("no metrics chosen")
    models_for(out)
    return out
