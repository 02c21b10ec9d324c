"""``deepsound experiment`` without the command line: videos in, the paper's table out.

Order of work: the VO-Free set (built by the method from the reference, or one given); per
backend, the generations (:func:`~deepsound.evaluation.experiment.generate_backend`) and each
setting's folder; the features of every folder (on Ray when asked: every file once, over
all rows at the same time); every row's metrics, first to learn which clips each row can
score, then over the clips all rows share (from the caches: nothing is extracted twice).
Everything stays in OUT, so an interrupted experiment resumes where it stopped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepsound.errors import ConfigError
from deepsound.evaluation.experiment import (
    SETTINGS,
    Backend,
    Generated,
    check_settings,
    cost_of,
    generate_backend,
    link_videos,
    place_settings,
)
from deepsound.evaluation.paper_table import Row, Table, common_clips, row_slug, rows_for, usable
from deepsound.files import ensure_dir

log = logging.getLogger(__name__)


@dataclass
class Paths:
    """Where everything of an experiment lies. With one backend, as earlier versions laid it out
    (``runs/``, ``settings/<setting>/`` … at the top, so an older experiment resumes); with
    several, each backend's under ``backends/<backend>/``. Reference caches are shared."""

    out: Path
    single: bool

    def base(self, backend: Backend) -> Path:
        return self.out if self.single else self.out / "backends" / backend.slug

    def settings(self, backend: Backend) -> Path:
        return self.base(backend) / "settings"

    def pred_cache(self, backend: Backend, setting: str) -> Path:
        return self.base(backend) / "cache" / setting

    def ref_cache(self, refset: str) -> Path:
        return self.out / "cache" / f"reference-{refset}"

    @property
    def video_cache(self) -> Path:
        return self.out / "cache" / "videos"  # once for both reference sets

    def eval_dir(self, backend: Backend, label: str) -> Path:
        return self.base(backend) / "eval" / row_slug(label)


def reference_sets(
    reference: Path, out: Path, vo_free: Path | None, needed: set[str], method: Any, videos_dir: Path,
    ray: Any, console: Any, quiet: bool,
) -> tuple[dict[str, Path], dict[str, Any]]:  # fmt: skip
    """Ori-Set (the reference as given) and VO-Free (given, or built by the method into OUT)."""
    from deepsound.evaluation.cache import is_cache_folder
    from deepsound.evaluation.reference_set import build_reference_set, read_manifest

    sets, info = {"ori": Path(reference)}, {"ori": {"folder": str(reference)}}
    if "vo-free" in needed:
        if vo_free is None and is_cache_folder(reference):
            raise ConfigError(f"{reference}: a feature cache has no audio to remove voice from; build the "
                              "VO-Free set from the clips (`deepsound reference build`) and give it with --vo-free")  # fmt: skip
        if vo_free is not None:
            manifest = read_manifest(vo_free)
        else:
            vo_free = out / "reference" / "vo-free"
            manifest = build_reference_set(reference, vo_free, method, videos=videos_dir, ray=ray,
                                           console=console, quiet=quiet)  # fmt: skip
        sets["vo-free"] = Path(vo_free)
        info["vo-free"] = {"folder": str(vo_free), "method": manifest.get("method"),
                           "counts": manifest.get("counts"), "voice_over_rate": manifest.get("voice_over_rate")}  # fmt: skip
    return sets, info


def run_experiment(
    videos: list[Path],
    reference: Path,
    out_dir: Path,
    pipelines: dict[Backend, Any],
    options: Any,
    *,
    vo_free: Path | None = None,
    settings: tuple[str, ...] = SETTINGS,
    eval_settings: Any = None,
    metrics: tuple[str, ...] | None = None,
    extractors: dict | None = None,
    progress: Any = None,
    on_clip: Callable[[Path], None] | None = None,
    videos_dir: Path | None = None,
    prompts: dict[str, str] | None = None,
    ray: Any = None,
    ray_extractors: Callable[[Any], dict] | None = None,
    console: Any = None,
    quiet: bool = True,
) -> Table:
    """Generate once per video and backend, derive every setting, score the paper's rows.

    ``ray`` (:class:`~deepsound.distributed.RaySettings`) spreads generation, the VO-Free set and
    feature extraction over Ray workers; ``ray_extractors`` is the factory of the model set each
    worker builds (default: the published feature models).
    """
    from deepsound.evaluation.extractors import METRICS, Settings, build_extractor, models_for
    from deepsound.evaluation.report import write_report
    from deepsound.evaluation.runner import evaluate, plan_sides

    settings = check_settings(tuple(settings))
    if not pipelines:
        raise ConfigError("no backend given")
    out_dir = ensure_dir(Path(out_dir))
    paths = Paths(out_dir, single=len(pipelines) == 1)
    rows = rows_for(settings)
    metrics = tuple(metrics or METRICS)
    eval_settings = eval_settings or Settings()
    if videos_dir is None:
        videos_dir = link_videos(videos, out_dir / "videos")
    method = next(iter(pipelines.values()))
    refs, ref_info = reference_sets(reference, out_dir, vo_free, {r[1] for r in rows}, method, videos_dir,
                                    ray, console, quiet)  # fmt: skip

    generated: dict[Backend, Generated] = {}
    lacks: dict[Backend, dict[str, dict[str, str]]] = {}
    for backend, pipeline in pipelines.items():
        gen = generate_backend(pipeline, videos, paths.base(backend), options, settings=settings,
                               prompts=prompts, ray=ray, on_clip=on_clip, console=console,
                               quiet=quiet)  # fmt: skip
        generated[backend] = gen
        lacks[backend] = place_settings(gen, ensure_dir(paths.settings(backend)), settings)
    stems = {v.stem for v in videos}

    def evaluate_row(backend: Backend, setting: str, refset: str, label: str, **kw: Any) -> Any:
        return evaluate(
            paths.settings(backend) / setting, refs[refset], videos=videos_dir, out_dir=paths.eval_dir(backend, label),
            settings=eval_settings, metrics=metrics, pred_cache=paths.pred_cache(backend, setting),
            reference_cache=paths.ref_cache(refset), extractors=shared, progress=progress or _quiet,
            video_cache=paths.video_cache, **kw,
        )  # fmt: skip

    shared = dict(extractors or {})
    placed = [
        (b, s, r, label)
        for b in pipelines
        for s, r, label in rows
        if any(paths.settings(b).joinpath(s).glob("*.wav"))
    ]
    if ray is not None:
        from deepsound.evaluation.distributed_features import extract_on_ray, sides_for_evaluation

        sides = [side for b, s, r, label in placed for side in sides_for_evaluation(
            paths.settings(b) / s, refs[r], videos_dir, paths.eval_dir(b, label), metrics,
            paths.pred_cache(b, s), paths.ref_cache(r), paths.video_cache)]  # fmt: skip
        stand_ins = extract_on_ray(
            sides, eval_settings, ray, factory=ray_extractors, console=console, quiet=quiet
        )
        shared = {**stand_ins, **shared}
    else:
        for name, modality in models_for(list(metrics)):
            if (name, modality) not in shared and name in ("panns", "vggish", "passt", "silero"):
                shared[(name, modality)] = build_extractor(name, modality, eval_settings)  # type: ignore[arg-type]

    losses: dict[tuple[str, str], dict[str, str]] = {}
    first: dict[tuple[str, str], Any] = {}
    for backend in pipelines:
        for setting, refset, label in rows:
            lost = dict(lacks[backend][setting])
            lost.update({s: f"generation failed: {r}" for s, r in generated[backend].failures.items()
                         if s not in generated[backend].runs})  # fmt: skip
            if (backend, setting, refset, label) in placed:
                # extraction only (no clip's metrics yet: FD of 2048-d features is costly, done once below)
                evaluation = evaluate_row(backend, setting, refset, label, stems=set())
                first[(backend.label, label)] = evaluation
                gen, ref, video = plan_sides(paths.settings(backend) / setting, refs[refset], videos_dir,
                                             paths.eval_dir(backend, label), paths.pred_cache(backend, setting),
                                             paths.ref_cache(refset), paths.video_cache)  # fmt: skip
                by_stem = {f.stem: f"{f.model} ({f.side}): {f.reason}" for f in evaluation.failures}
                for stem, why in usable(
                    gen.cache.all(), {**video.cache.all(), **ref.cache.all()}, metrics
                ).items():
                    lost.setdefault(stem, by_stem.get(stem, why))
            for stem in stems - {s for s in generated[backend].runs} - set(lost):
                lost[stem] = "not generated"
            losses[(backend.label, label)] = lost

    common, excluded = common_clips(losses, stems)
    table = Table(common=common, excluded=excluded, references=ref_info)
    keep = set(common)
    for backend in pipelines:
        block = table.blocks.setdefault(backend.label, {})
        gen = generated[backend]
        for setting, refset, label in rows:
            evaluation = evaluate_row(backend, setting, refset, label, stems=keep)
            write_report(evaluation, paths.eval_dir(backend, label), name=f"{backend.label} · {label}")
            from deepsound.evaluation.report import scores_of

            row = Row(label, setting, refset, scores_of(evaluation), clips=len(common),
                      failures=losses[(backend.label, label)])  # fmt: skip
            for stem in common:
                cost = cost_of(setting, gen.runs[stem], gen.neg_runs.get(stem))
                row.seconds += cost["seconds"]
                row.mllm_calls += int(cost["mllm_calls"])
            block[label] = row
    return table


def _quiet(label: str, total: int) -> Callable[[], None]:
    return lambda: None
