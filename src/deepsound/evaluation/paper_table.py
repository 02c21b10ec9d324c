"""The paper's table: its rows (a setting paired with a reference set), its eight metrics in its
order, the change of each row against Direct & VO-Free, over one common set of clips.

Rows: Direct & Ori-Set, Direct & VO-Free, Direct-neg & Ori-Set, and the step-by-step settings
(s3, s4-rm, s4-rep, s4-neg) & VO-Free, one block per V2A backend. The change is the paper's
"reduced by / improves by" percentage: ``(base − value) / base`` for the lower-is-better
metrics (FD, KL, DeSync) and ``(value − base) / base`` for the higher-is-better ones (IS,
IB-score), so a positive number is always an improvement. Beside the paper's columns: the
voice-over rate of every row, the MLLM calls and the seconds its soundtracks cost.

Every row is computed over the same clips: those that every row of every backend could
score (generated, placed, and featured on both sides). Every other clip is listed with the
reason each row lost it.
"""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepsound.errors import DeepSoundError
from deepsound.evaluation.report import COLUMNS, fmt, relative_improvement
from deepsound.files import atomic_output, write_json

# (setting, reference set, label), in the paper's order
ROWS: tuple[tuple[str, str, str], ...] = (
    ("direct", "ori", "Direct & Ori-Set"),
    ("direct", "vo-free", "Direct & VO-Free"),
    ("direct-neg", "ori", "Direct-neg & Ori-Set"),
    ("s3", "vo-free", "Ours (s3) & VO-Free"),
    ("s4-rm", "vo-free", "Ours (s4-rm) & VO-Free"),
    ("s4-rep", "vo-free", "Ours (s4-rep) & VO-Free"),
    ("s4-neg", "vo-free", "Ours (s4-neg) & VO-Free"),
)
BASELINE = "Direct & VO-Free"
# what each setting's soundtrack is (the legend under the table)
SETTING_NAMES = {
    "direct": "Direct: the step-1 audio as generated",
    "direct-neg": 'Direct-neg: generated with the negative prompt "human voice"',
    "s3": "Ours (s3): Step-by-step s3, the voice removed where the judge heard voice-over",
    "s4-rm": "Ours (s4-rm): Step-by-step s4, silence where removal left silence",
    "s4-rep": "Ours (s4-rep): Step-by-step s4, the step-1 audio where removal left silence",
    "s4-neg": "Ours (s4-neg): Step-by-step s4, regenerated with the negative prompt where removal left silence",
}
REFERENCE_NAMES = {
    "ori": "Ori-Set: the test set's audio as it is",
    "vo-free": "VO-Free: the same with its voice-over removed by the method (judge, then separator)",
}
PAPER_METRICS = tuple(key for key, _, _ in COLUMNS if key != "voice_over_rate")  # the paper's 8
SIGN = "positive = better: (base − value)/base for FD, KL, DeSync; (value − base)/base for IS, IB-score"

# the cache files a clip needs on each side for each metric to count it
GEN_FILES = {
    "fd_passt": ("passt_features_embed.pth",), "kl_passt": ("passt_logits.pth",),
    "fd_panns": ("pann_features.pth",), "kl_panns": ("pann_features.pth",), "is_panns": ("pann_features.pth",),
    "fd_vgg": ("vggish_features.pth",), "ib_score": ("imagebind_audio.pth",),
    "desync": ("synchformer_audio.pth",), "voice_over_rate": ("pann_features.pth", "silero_speech.pth"),
}  # fmt: skip
REF_FILES = {
    "fd_passt": ("passt_features_embed.pth",), "kl_passt": ("passt_logits.pth",),
    "fd_panns": ("pann_features.pth",), "kl_panns": ("pann_features.pth",),
    "fd_vgg": ("vggish_features.pth",), "ib_score": ("imagebind_video.pth",),
    "desync": ("synchformer_video.pth",),
}  # fmt: skip


def rows_for(settings: tuple[str, ...]) -> list[tuple[str, str, str]]:
    return [row for row in ROWS if row[0] in settings]


def row_slug(label: str) -> str:
    """``Ours (s4-neg) & VO-Free`` → ``ours-s4-neg-vo-free`` (a folder name)."""
    return re.sub(r"[^a-z0-9_]+", "-", label.lower()).strip("-")


def usable(
    gen: dict[str, dict], ref: dict[str, dict], metrics: list[str] | tuple[str, ...]
) -> dict[str, str]:
    """Stem → why it cannot count, for every generated stem a row cannot score (from its caches)."""
    stems = {s for files in gen.values() for s in files}
    missing: dict[str, str] = {}
    for metric in metrics:
        for name in GEN_FILES.get(metric, ()):
            for stem in sorted(stems - set(gen.get(name, {}))):
                missing.setdefault(stem, f"no {name.removesuffix('.pth')} features of the generated audio")
        for name in REF_FILES.get(metric, ()):
            for stem in sorted(stems - set(ref.get(name, {}))):
                missing.setdefault(stem, f"no {name.removesuffix('.pth')} features of the reference")
    return missing


@dataclass
class Row:
    label: str
    setting: str
    reference: str
    scores: dict[str, float | None] = field(default_factory=dict)
    clips: int = 0
    mllm_calls: int = 0
    seconds: float = 0.0
    failures: dict[str, str] = field(default_factory=dict)  # stem → reason this row lost it


@dataclass
class Table:
    blocks: dict[str, dict[str, Row]] = field(default_factory=dict)  # backend → label → row
    common: list[str] = field(default_factory=list)
    excluded: dict[str, dict[str, str]] = field(default_factory=dict)  # stem → "backend / row" → reason
    references: dict[str, Any] = field(default_factory=dict)
    metrics: tuple[str, ...] = PAPER_METRICS

    def improvement(self, backend: str, label: str) -> dict[str, float | None]:
        base = self.blocks[backend].get(BASELINE)
        row = self.blocks[backend][label]
        if base is None or label == BASELINE:
            return {}
        return {key: _finite(relative_improvement(base.scores.get(key), row.scores.get(key), lower))
                for key, _, lower in COLUMNS if key in PAPER_METRICS}  # fmt: skip


def _finite(value: float | None) -> float | None:
    return value if value is None or math.isfinite(value) else None


def common_clips(losses: dict[tuple[str, str], dict[str, str]], stems: set[str]) -> tuple[list[str], dict]:
    """Clips no row lost; and for every other clip, the rows that lost it with why."""
    excluded: dict[str, dict[str, str]] = {}
    for (backend, label), lost in losses.items():
        for stem, reason in lost.items():
            excluded.setdefault(stem, {})[f"{backend} / {label}"] = reason
    common = sorted(stems - set(excluded))
    if not common:
        counts = "; ".join(f"{b} / {lab}: lost {len(lost)}" for (b, lab), lost in losses.items() if lost)
        first = next((f"{s}: {next(iter(r.values()))}" for s, r in sorted(excluded.items())), "no clips")
        raise DeepSoundError(
            f"no clip can be scored in every row ({counts or 'no clips given'}); e.g. {first}"
        )
    return common, {s: excluded[s] for s in sorted(excluded)}


def to_json(table: Table) -> dict[str, Any]:
    blocks = {}
    for backend, rows in table.blocks.items():
        blocks[backend] = {
            label: {
                "setting": row.setting, "reference": row.reference,
                "scores": {k: _finite(row.scores.get(k)) for k in PAPER_METRICS},
                "improvement_pct": table.improvement(backend, label),
                "voice_over_rate": _finite(row.scores.get("voice_over_rate")),
                "mllm_calls": row.mllm_calls, "seconds": round(row.seconds, 3), "clips": row.clips,
                "failures": [{"stem": s, "reason": r} for s, r in sorted(row.failures.items())],
            }
            for label, row in rows.items()
        }  # fmt: skip
    return {
        "metrics": list(PAPER_METRICS),
        "rows": [label for _, _, label in ROWS if any(label in r for r in table.blocks.values())],
        "baseline": BASELINE,
        "improvement_sign": SIGN,
        "blocks": blocks,
        "common_clips": table.common,
        "excluded": table.excluded,
        "reference_sets": table.references,
    }


def markdown(table: Table) -> str:
    headers = [h for key, h, _ in COLUMNS if key in PAPER_METRICS]
    lines = ["| Method | " + " | ".join(headers) + " | VO rate | MLLM calls | seconds |"]
    lines.append("|" + "---|" * (len(headers) + 4))
    for backend, rows in table.blocks.items():
        lines.append(f"| **{backend}** |" + " |" * (len(headers) + 3))
        for label, row in rows.items():
            change = table.improvement(backend, label)
            cells = []
            for key in PAPER_METRICS:
                cell = fmt(row.scores.get(key), key)
                if change.get(key) is not None:
                    cell += f" ({change[key]:+.2f}%)"
                cells.append(cell)
            vo = fmt(row.scores.get("voice_over_rate"), "voice_over_rate")
            lines.append(
                f"| {label} | " + " | ".join(cells) + f" | {vo} | {row.mllm_calls} | {row.seconds:.1f} |"
            )
    return "\n".join(lines) + "\n"


def csv_text(table: Table) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["backend", "row", "setting", "reference", *PAPER_METRICS,
                     *(f"{k}_improvement_pct" for k in PAPER_METRICS),
                     "voice_over_rate", "mllm_calls", "seconds", "clips"])  # fmt: skip
    for backend, rows in table.blocks.items():
        for label, row in rows.items():
            change = table.improvement(backend, label)
            writer.writerow([
                backend, label, row.setting, row.reference,
                *(_cell(row.scores.get(k)) for k in PAPER_METRICS), *(_cell(change.get(k)) for k in PAPER_METRICS),
                _cell(row.scores.get("voice_over_rate")), row.mllm_calls, f"{row.seconds:.3f}", row.clips,
            ])  # fmt: skip
    return buffer.getvalue()


def _cell(value: float | None) -> str:
    return "" if value is None or not math.isfinite(value) else f"{value:.6g}"


def write_table(table: Table, out_dir: Path) -> dict[str, Path]:
    """``metrics.json``, ``experiment.md``, ``experiment.csv`` and ``experiment.png`` in ``out_dir``."""
    paths = {
        "json": out_dir / "metrics.json", "markdown": out_dir / "experiment.md",
        "csv": out_dir / "experiment.csv", "figure": out_dir / "experiment.png",
    }  # fmt: skip
    write_json(paths["json"], to_json(table))
    excluded = "".join(
        f"- `{stem}`: " + "; ".join(f"{where}: {why}" for where, why in rows.items()) + "\n"
        for stem, rows in table.excluded.items()
    )
    text = (
        f"# DeepSound-V1: the paper's table\n\n{markdown(table)}\n"
        f"IB-score ×100. In brackets: change against {BASELINE} in % ({SIGN}). "
        f"Every row over the same {len(table.common)} clips.\n\n"
        + "".join(f"- {SETTING_NAMES[k]}\n" for k in _shown(table, 0))
        + "".join(f"- {REFERENCE_NAMES[k]}\n" for k in _shown(table, 1))
        + (f"\n## Clips left out\n\n{excluded}" if excluded else "")
    )
    with atomic_output(paths["markdown"]) as tmp:
        tmp.write_text(text, encoding="utf-8")
    with atomic_output(paths["csv"]) as tmp:
        tmp.write_text(csv_text(table), encoding="utf-8")
    figure(table, paths["figure"])
    return paths


def _shown(table: Table, index: int) -> list[str]:
    """The settings (0) or reference sets (1) the table's rows use, in the paper's order."""
    used = {(r.setting, r.reference)[index] for rows in table.blocks.values() for r in rows.values()}
    return [k for k in (SETTING_NAMES if index == 0 else REFERENCE_NAMES) if k in used]


def figure(table: Table, path: Path) -> None:
    """Change against Direct & VO-Free per metric, a bar per row, a panel per backend."""
    from deepsound.evaluation.report import _matplotlib

    plt = _matplotlib()
    backends = list(table.blocks)
    fig, axes = plt.subplots(len(backends), 1, figsize=(12, 3.5 * len(backends)), squeeze=False)
    for ax, backend in zip(axes[:, 0], backends, strict=True):
        labels = [label for label in table.blocks[backend] if label != BASELINE]
        width = 0.8 / max(1, len(labels))
        for i, label in enumerate(labels):
            change = table.improvement(backend, label)
            values = [change.get(k) or 0.0 for k in PAPER_METRICS]
            ax.bar([x + i * width for x in range(len(PAPER_METRICS))], values, width, label=label)
        ax.axhline(0, color="black", lw=0.8)
        ax.set_xticks([x + 0.4 - width / 2 for x in range(len(PAPER_METRICS))])
        ax.set_xticklabels([h for key, h, _ in COLUMNS if key in PAPER_METRICS])
        ax.set_ylabel(f"% vs {BASELINE}")
        ax.set_title(f"{backend} ({len(table.common)} clips; positive is better)")
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
