"""What ``deepsound evaluate`` leaves in OUT: ``metrics.json``, ``metrics.md``, ``metrics.png``.

``metrics.json`` holds the nine numbers under the names the paper's table
uses (``fd_passt … desync``, ``voice_over_rate``), every clip's share of them,
the same numbers under av-benchmark's own names (for checking one against
the other), the skipped files with their reasons and the settings. The
Markdown table has the paper's column order; the figure shows per-clip DeSync
and speech probability, each beside the reference's distribution.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deepsound.errors import ConfigError
from deepsound.evaluation.metrics import METRIC_KEYS
from deepsound.files import atomic_output, ensure_dir, write_json

if TYPE_CHECKING:
    from deepsound.evaluation.runner import Evaluation

log = logging.getLogger(__name__)

# the paper's columns: (key, header, lower is better)
COLUMNS = (
    ("fd_passt", "FD_PaSST↓", True),
    ("fd_panns", "FD_PANNs↓", True),
    ("fd_vgg", "FD_VGG↓", True),
    ("kl_panns", "KL_PANNs↓", True),
    ("kl_passt", "KL_PaSST↓", True),
    ("is_panns", "IS↑", False),
    ("ib_score", "IB-score↑", False),
    ("desync", "DeSync↓", True),
    ("voice_over_rate", "VO rate↓", True),
)
REPORT_KEYS = (*METRIC_KEYS, "voice_over_rate")


def scores_of(evaluation: Evaluation) -> dict[str, float | None]:
    scores = {k: evaluation.metrics.scores.get(k) for k in METRIC_KEYS}
    scores["voice_over_rate"] = evaluation.voice_over.get("voice_over_rate")
    return scores


def _finite(value: Any) -> Any:
    """NaN (e.g. IS with fewer files than splits, as av-benchmark gives it) is written as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def to_json(evaluation: Evaluation) -> dict[str, Any]:
    return _finite(_to_json(evaluation))


def _to_json(evaluation: Evaluation) -> dict[str, Any]:
    scores = scores_of(evaluation)
    per_clip: dict[str, dict[str, Any]] = {}
    for stem, values in evaluation.metrics.per_clip.items():
        per_clip.setdefault(stem, {}).update(values)
    for stem, values in evaluation.voice_over.get("per_clip", {}).items():
        per_clip.setdefault(stem, {}).update(values)
    extra = {k: v for k, v in evaluation.metrics.scores.items() if k not in scores}
    vo = {k: v for k, v in evaluation.voice_over.items() if k != "per_clip"}
    return {
        **scores,
        "extra": extra,
        "voice_over": vo,
        "av_benchmark": evaluation.metrics.official(),
        "reference": evaluation.reference_extra,
        "pairs": evaluation.metrics.pairs,
        "counts": evaluation.counts,
        "extracted_this_run": evaluation.extracted,
        "skipped": [vars(f) for f in evaluation.failures],
        "notes": evaluation.metrics.notes,
        "settings": evaluation.settings,
        "seconds": evaluation.seconds,
        "per_clip": {k: per_clip[k] for k in sorted(per_clip)},
    }


def fmt(value: float | None, key: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if key == "voice_over_rate":
        return f"{100 * value:.1f}%"
    if key in ("kl_panns", "kl_passt", "ib_score", "desync"):
        return f"{value:.3f}" if key != "ib_score" else f"{100 * value:.2f}"
    return f"{value:.2f}"


def markdown_table(rows: dict[str, dict[str, float | None]], baseline: str | None = None) -> str:
    """The paper's table: one row per method; with ``baseline``, each cell also says how much
    better (+) or worse (−) than the baseline row it is, in percent."""
    header = "| Method | " + " | ".join(h for _, h, _ in COLUMNS) + " |"
    lines = [header, "|" + "---|" * (len(COLUMNS) + 1)]
    base = rows.get(baseline) if baseline else None
    for name, scores in rows.items():
        cells = []
        for key, _, lower_better in COLUMNS:
            cell = fmt(scores.get(key), key)
            if base is not None and name != baseline:
                change = relative_improvement(base.get(key), scores.get(key), lower_better)
                if change is not None:
                    cell += f" ({change:+.1f}%)"
            cells.append(cell)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def relative_improvement(base: float | None, value: float | None, lower_better: bool) -> float | None:
    """Percent by which ``value`` improves on ``base`` (positive = better)."""
    if base is None or value is None or base == 0:
        return None
    change = (base - value) / abs(base) if lower_better else (value - base) / abs(base)
    return 100.0 * change


def write_report(evaluation: Evaluation, out_dir: Path, name: str = "generated") -> dict[str, Path]:
    out_dir = ensure_dir(Path(out_dir))
    data = to_json(evaluation)
    paths = {
        "json": out_dir / "metrics.json",
        "markdown": out_dir / "metrics.md",
        "figure": out_dir / "metrics.png",
    }
    write_json(paths["json"], data)
    table = markdown_table({name: scores_of(evaluation)})
    skipped = "".join(f"- `{f.path}` ({f.model}, {f.side}): {f.reason}\n" for f in evaluation.failures)
    notes = "".join(f"- {n}\n" for n in evaluation.metrics.notes)
    text = (
        f"# Evaluation of {evaluation.settings.get('generated')}\n\n{table}\n"
        f"IB-score ×100. Clips of {evaluation.settings.get('duration')} s; "
        f"{evaluation.counts.get('generated_files')} generated, "
        f"{evaluation.counts.get('reference_files')} reference files.\n"
        + (f"\n## Skipped files\n\n{skipped}" if skipped else "")
        + (f"\n## Notes\n\n{notes}" if notes else "")
    )
    with atomic_output(paths["markdown"]) as tmp:
        tmp.write_text(text, encoding="utf-8")
    figure(data, paths["figure"])
    return paths


def figure(data: dict[str, Any], path: Path) -> None:
    """Per-clip DeSync and speech probability, each with its distribution beside the reference's."""
    plt = _matplotlib()

    clips = data["per_clip"]
    stems = sorted(clips)
    fig, axes = plt.subplots(2, 2, figsize=(12, 7), gridspec_kw={"width_ratios": [3, 1]})
    desync = [clips[s].get("desync") for s in stems]
    ref_desync = list((data.get("reference") or {}).get("desync_per_clip", {}).values())
    _bars(axes[0][0], stems, desync, "DeSync (s)", data.get("desync"))
    axes[0][0].set_title("DeSync per clip: mean |offset| of the first and last 4.8 s")
    _hist(axes[0][1], desync, ref_desync, "DeSync (s)", bins=[i * 0.2 - 0.1 for i in range(12)])
    speech = [clips[s].get("speech_prob") for s in stems]
    ref_speech = [clips[s].get("reference_speech_prob") for s in stems]
    colors = ["tab:red" if clips[s].get("voice_over") and not clips[s].get("reference_has_speech") else
              "tab:blue" for s in stems]  # fmt: skip
    _bars(axes[1][0], stems, speech, "speech probability (PANNs)", None, colors)
    axes[1][0].axhline(data.get("voice_over", {}).get("threshold", 0.5), color="grey", ls="--", lw=1)
    _hist(axes[1][1], speech, ref_speech, "speech probability", bins=[i / 10 for i in range(11)])
    rate = data.get("voice_over_rate")
    axes[1][0].set_title(
        "voice-over (red): speech where the reference has none"
        + (f" — rate {100 * rate:.1f}%" if rate is not None else "")
    )
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def _matplotlib() -> Any:
    """pyplot on the file-only backend, or a clear error naming the extra that brings it."""
    try:
        import matplotlib
    except ImportError:
        raise ConfigError("the figure needs matplotlib: pip install 'deepsound[eval]'") from None

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _bars(ax: Any, stems: list[str], values: list, label: str, mean: float | None, colors=None) -> None:  # noqa: ANN001
    xs = [i for i, v in enumerate(values) if v is not None]
    ax.bar(xs, [values[i] for i in xs], color=[colors[i] for i in xs] if colors else "tab:blue")
    if mean is not None:
        ax.axhline(mean, color="black", lw=1, label=f"mean {mean:.3f}")
        ax.legend(loc="upper right")
    ax.set_ylabel(label)
    ax.set_xticks(range(len(stems)))
    ax.set_xticklabels(stems if len(stems) <= 30 else [""] * len(stems), rotation=70, fontsize=6)
    if not xs:
        ax.text(0.5, 0.5, "not computed", transform=ax.transAxes, ha="center")


def _hist(ax: Any, values: list, reference: list, label: str, bins: list[float]) -> None:
    gen = [v for v in values if v is not None]
    ref = [v for v in reference if v is not None]
    if gen:
        ax.hist(gen, bins=bins, alpha=0.6, label="generated", density=False)
    if ref:
        ax.hist(ref, bins=bins, alpha=0.6, label="reference", density=False)
    ax.set_xlabel(label)
    if gen or ref:
        ax.legend()
    else:
        ax.text(0.5, 0.5, "not computed", transform=ax.transAxes, ha="center")
