"""Feature extraction spread over Ray workers, each file once, then the metrics as usual.

Each worker builds the feature models once (one model set per worker) and takes one file at
a time: it runs every model that file needs and writes the entries to a *shard*
(``<cache>/shards/<stem>.<sha256 prefix>.pt``, atomically, last), which is the item's mark of
completion. The driver then files the shards into the sides' av-benchmark caches (with the
fingerprint the worker reported), and :func:`deepsound.evaluation.runner.evaluate` runs over
caches in which nothing is stale, with stand-ins that only carry those fingerprints: the
driver never loads a feature network except Synchformer's offset head, which DeSync needs.
A killed run resumes from its shards; a changed file has another digest and so another shard.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from deepsound.evaluation.cache import FeatureCache
from deepsound.evaluation.extractors import Settings, Source, models_for
from deepsound.evaluation.runner import Side, file_digest, plan_sides, pool_files
from deepsound.files import atomic_output

log = logging.getLogger(__name__)

ExtractorsFactory = Callable[[Settings], dict[tuple[str, str], Any]]


@dataclass(frozen=True)
class FeatureItem:
    """One file of one side and the models to run on it."""

    cache: str  # the side's cache folder
    stem: str
    path: str
    digest: str
    modality: str
    models: tuple[str, ...]
    silent_seconds: float | None = None

    @property
    def shard(self) -> Path:
        digest = self.digest.split(":")[-1][:16]
        return Path(self.cache) / "shards" / f"{self.stem}.{self.modality}.{digest}.pt"


class FeatureJob:
    """The worker side: models built once in ``setup``; ``run`` writes one shard."""

    def __init__(self, settings: Settings, factory: ExtractorsFactory | None = None) -> None:
        self.settings, self.factory = settings, factory
        self.pool: Any = None

    def key(self, item: FeatureItem) -> str:
        return f"{Path(item.cache).name}/{item.stem} ({item.modality})"

    def is_done(self, item: FeatureItem) -> bool:
        return item.shard.exists()

    def setup(self) -> None:
        from deepsound.evaluation.runner import ExtractorPool

        self.pool = ExtractorPool(self.settings, self.factory(self.settings) if self.factory else None)

    def run(self, item: FeatureItem) -> dict[str, Any]:
        source = Source(item.stem, Path(item.path), silent_seconds=item.silent_seconds)
        shard: dict[str, Any] = {}
        for name in item.models:
            extractor = self.pool.get(name, item.modality)
            entry: dict[str, Any] = {"fingerprint": extractor.fingerprint(), "files": extractor.files}
            try:
                entry["entries"] = extractor.extract(source)
            except (ValueError, RuntimeError, OSError, EOFError) as exc:
                entry["error"] = str(exc).replace(item.path, source.path.name) or type(exc).__name__
            shard[f"{name}_{item.modality}"] = entry
        item.shard.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(item.shard) as tmp:
            torch.save({"digest": item.digest, "models": shard}, tmp)
        return {"models": len(shard)}


def plan_items(sides: list[tuple[Side, list[str], str]]) -> list[FeatureItem]:
    """One item per (side, file) that still lacks a shard, with the models it needs."""
    items: dict[tuple[str, str, str], FeatureItem] = {}
    for side, models, modality in sides:
        if not models:
            continue
        for src in side.sources:
            key = (str(side.cache.folder), src.stem, modality)
            known = items.get(key)
            names = tuple(sorted(set(models) | set(known.models if known else ())))
            items[key] = FeatureItem(
                str(side.cache.folder), src.stem, str(src.path.resolve()), file_digest(src), modality, names,
                src.silent_seconds,
            )  # fmt: skip
    return list(items.values())


def sides_for_evaluation(
    pred: Path, reference: Path, videos: Path | None, out_dir: Path, metrics: list[str] | tuple[str, ...],
    pred_cache: Path | None = None, reference_cache: Path | None = None, video_cache: Path | None = None,
) -> list[tuple[Side, list[str], str]]:  # fmt: skip
    """What :func:`evaluate` would extract, side by side (the same rules as its loop)."""
    gen, ref, video_side = plan_sides(
        pred, reference, videos, out_dir, pred_cache, reference_cache, video_cache
    )
    gen_models, ref_models, video_models = [], [], []
    for name, modality in models_for(list(metrics)):
        if modality == "video":
            if video_side.sources and not (ref.cache.foreign and ref.cache.get(pool_files(name))):
                video_models.append(name)
            continue
        gen_models.append(name)
        if ref.sources and (name not in ("imagebind", "synchformer") or video_side.sources):
            ref_models.append(name)
    return [(gen, gen_models, "audio"), (ref, ref_models, "audio"), (video_side, video_models, "video")]


def file_shards(items: list[FeatureItem]) -> dict[tuple[str, str], tuple[dict[str, Any], tuple[str, ...]]]:
    """Put every shard into its side's cache; returns (fingerprint, files) per (model, modality)."""
    fingerprints: dict[tuple[str, str], tuple[dict[str, Any], tuple[str, ...]]] = {}
    by_cache: dict[str, list[FeatureItem]] = {}
    for item in items:
        by_cache.setdefault(item.cache, []).append(item)
    for folder, group in by_cache.items():
        cache = FeatureCache(Path(folder))
        digests = {i.stem: i.digest for i in group}
        shards: dict[str, dict[str, Any]] = {}
        for i in group:  # one stem may have an audio and a video shard in the same cache
            if i.shard.exists():
                data = torch.load(i.shard, weights_only=False)
                shards.setdefault(i.stem, {"digest": data["digest"], "models": {}})["models"].update(
                    data["models"]
                )
        keys = {k for s in shards.values() for k in s["models"]}
        for key in sorted(keys):
            some = next(s["models"][key] for s in shards.values() if key in s["models"])
            files = tuple(some["files"])
            cache.stale(key, files, some["fingerprint"], digests)
            name, modality = key.rsplit("_", 1)
            fingerprints[(name, modality)] = (some["fingerprint"], files)
            for stem, shard in shards.items():
                entry = shard["models"].get(key)
                if entry is None:
                    continue
                cache.drop(key, files, stem)
                if "entries" in entry:
                    cache.put(key, stem, shard["digest"], entry["entries"])
                else:
                    cache.fail(key, files, stem, shard["digest"], entry["error"])
        cache.save()
    return fingerprints


class CachedOnly:
    """Stands for a model whose features a worker already put in the cache: same name, files and
    fingerprint, so nothing is stale; a file it meets anyway was lost on Ray and says so."""

    def __init__(self, name: str, modality: str, files: tuple[str, ...], fingerprint: dict[str, Any]):
        self.name, self.modality, self.files, self._fingerprint = name, modality, files, fingerprint

    def fingerprint(self) -> dict[str, Any]:
        return self._fingerprint

    def extract(self, source: Source) -> dict[str, Any]:
        raise RuntimeError("not extracted: its Ray worker was lost too often (run again to retry)")


def extract_on_ray(
    sides: list[tuple[Side, list[str], str]],
    settings: Settings,
    ray_settings: Any,
    *,
    factory: ExtractorsFactory | None = None,
    console: Any = None,
    quiet: bool = True,
) -> dict[tuple[str, str], Any]:
    """Extract every side's files on Ray; returns stand-in extractors for :func:`evaluate`."""
    from deepsound.distributed.tasks import run_on_ray

    items = plan_items(sides)
    if items:
        summary = run_on_ray(FeatureJob(settings, factory), items, ray_settings, label="features",
                             console=console, quiet=quiet)  # fmt: skip
        for outcome in summary.outcomes:
            if outcome.status == "failed":
                log.warning("%s: %s", outcome.key, outcome.reason)
    stand_ins: dict[tuple[str, str], Any] = {}
    for (name, modality), (fingerprint, files) in file_shards(items).items():
        stand_ins[(name, modality)] = CachedOnly(name, modality, files, fingerprint)
    return stand_ins
