"""Goldens for ``deepsound.evaluation.metrics``: av-benchmark's own ``evaluate`` on seeded caches.

Usage (the official checkout made with ``git archive`` of the pinned commit)::

    PYTHONPATH=src /path/to/venv-with-torchaudio/bin/python tools/goldens/av_benchmark_metrics.py /path/to/av-benchmark

What it does:

1. :func:`synthetic_caches` builds reference and generated feature dictionaries
   in av-benchmark's cache layout (file name → stem → tensor) from fixed seeds:
   24 reference clips with VGGSound-style ids and 24 generated files named
   the three ways av-benchmark's pairing knows (exact stem, ``000000014_<id>-0``,
   ``<id>-0``), one generated file without reference and one reference file
   without generation, real dimensions for every model (PANNs 2048 + 527,
   VGGish 128 per 0.96 s example with varying counts, PaSST 768 + 527,
   ImageBind 1024, Synchformer 16 segments of 8 video / 6 audio tokens of 768).
2. It writes them with ``torch.save`` into two temporary cache folders, exactly
   the files av-benchmark's extraction writes.
3. It runs the official ``av_bench.evaluate.evaluate`` on them on the CPU, with
   the official Synchformer filled with seeded weights
   (:func:`deepsound.testing.equivalence.fill_seeded`, seed :data:`SYNC_SEED`),
   and records the official numbers, the official offset-head logits of each
   half of each pair, and the official ``compute_fd`` on small well- and
   ill-conditioned sets.

The features are regenerated from the seeds by the tests (this module is
imported by ``tests/test_evaluation_metrics.py``), so only the small JSON of
official outputs is committed.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

AV_BENCHMARK_COMMIT = "050a5cdb9bbd1a6f8cbb9fdde076992a695e2501"
SEED = 10
SYNC_SEED = 3
# "full": the real feature sizes (slow: sqrtm of 2048 x 2048); "small": the same files and
# pairing with narrow embeddings, for the quick tests. Logits and Synchformer features keep
# their real sizes in both (the offset head needs 768).
DIMS = {
    "full": {"panns": 2048, "vggish": 128, "passt": 768, "ib": 1024},
    "small": {"panns": 40, "vggish": 12, "passt": 24, "ib": 32},
}
OUT = Path(__file__).resolve().parents[2] / "tests" / "data" / "evaluation" / "metrics_golden.json"

_IDS = [
    "zxpo56cpUBU", "--0PQM4-hqg", "a1B2c3D4e5F", "Q-q_w-W_e-E", "0000000000a", "kLmNoPqRsTu",
    "Zz9_Yy8-Xx7", "abcdefghijk", "MNOPQRSTUVW", "-_-_-_-_-_-", "p9o8i7u6y5t", "HhGgFfEeDdC",
    "t0t0t0t0t0t", "qwertyuiopa", "ASDFGHJKLzx", "c-v_b-n_m-Q", "1a2b3c4d5e6", "r_r_r_r_r_r",
    "Lorem_Ipsum", "dolorSitAme", "consectetur", "adipiscingE", "sed-do-eius", "modTempor_I",
]  # fmt: skip


def _randn(name: str, shape: tuple[int, ...], scale: float = 1.0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(SEED * 1_000_003 + zlib.crc32(name.encode()))
    return (torch.randn(shape, generator=gen, dtype=torch.float64) * scale).float()


def stems() -> tuple[list[str], list[str]]:
    """Reference stems and generated stems (generated sorted, as av-benchmark's extraction orders them)."""
    gt = [f"{vid}_{(7 * i) % 300:06d}" for i, vid in enumerate(_IDS)]
    pred = []
    for i, name in enumerate(gt[:-1]):  # the last reference clip has no generation
        pred.append(name if i % 3 == 0 else (f"{i:09d}_{name}-0" if i % 3 == 1 else f"{name}-0"))
    pred.append("orphan_generation")  # no reference
    return sorted(gt), sorted(pred)


def _sync(key: str, tokens: int) -> torch.Tensor:
    """Synchformer features that move the seeded offset head: every token of a segment near one
    clip direction (drifting from the first to the last segment), plus small per-token noise.
    Independent noise on every token averages out in the head's attention and leaves its answer
    the same for every clip."""
    start, end = _randn(key + "/sync_a", (1, 1, 768)), _randn(key + "/sync_b", (1, 1, 768))
    mix = torch.linspace(0, 1, 16).view(16, 1, 1)
    return (1 - mix) * start + mix * end + 0.1 * _randn(key + "/sync_noise", (16, tokens, 768))


def _entry(side: str, stem: str, n_vgg: int, dims: dict[str, int]) -> dict[str, Any]:
    key = f"{side}/{stem}"
    logits = _randn(key + "/panns_logits", (527,), 2.5)
    return {
        "pann": {
            "2048": torch.relu(_randn(key + "/panns_2048", (dims["panns"],))),
            "logits": logits,
            "clipwise_output": torch.sigmoid(logits),
        },
        "vggish": _randn(key + "/vggish", (n_vgg, dims["vggish"]), 0.5),
        "passt_embed": _randn(key + "/passt_embed", (dims["passt"],)),
        "passt_logits": _randn(key + "/passt_logits", (527,), 3.0),
        "ib": _randn(key + "/ib", (dims["ib"],)),
        "sync": _sync(key, 8 if side == "gt" else 6),
    }


def synthetic_caches(size: str = "small") -> tuple[dict[str, dict], dict[str, dict]]:
    """(generated caches, reference caches), each file name → {stem: entry}, in sorted stem order."""
    dims = DIMS[size]
    gt_stems, pred_stems = stems()
    out: dict[str, dict[str, dict]] = {}
    for side, names in (("gt", gt_stems), ("pred", pred_stems)):
        files: dict[str, dict] = {
            k: {}
            for k in (
                "pann_features.pth", "vggish_features.pth", "passt_features_embed.pth", "passt_logits.pth"
            )
        }  # fmt: skip
        files["imagebind_video.pth" if side == "gt" else "imagebind_audio.pth"] = {}
        files["synchformer_video.pth" if side == "gt" else "synchformer_audio.pth"] = {}
        for i, stem in enumerate(names):
            e = _entry(side, stem, 10 if i % 4 else 9, dims)
            files["pann_features.pth"][stem] = e["pann"]
            files["vggish_features.pth"][stem] = e["vggish"]
            files["passt_features_embed.pth"][stem] = e["passt_embed"]
            files["passt_logits.pth"][stem] = e["passt_logits"]
            files["imagebind_video.pth" if side == "gt" else "imagebind_audio.pth"][stem] = e["ib"]
            files["synchformer_video.pth" if side == "gt" else "synchformer_audio.pth"][stem] = e["sync"]
        out[side] = files
    return out["pred"], out["gt"]


REAL_CACHE = Path(__file__).resolve().parents[2] / "tests" / "data" / "eval_audio" / "official_cache"


def real_caches() -> tuple[dict[str, dict], dict[str, dict]]:
    """Generated side: features av-benchmark's own extraction wrote for real and synthetic clips
    (``tests/data/eval_audio/official_cache``, seeded networks); reference side: seeded features of
    the real sizes for the same stems."""
    pred = {p.name: torch.load(p, weights_only=True) for p in sorted(REAL_CACHE.glob("*.pth"))}
    stems_ = sorted(pred["pann_features.pth"])
    gt: dict[str, dict] = {name: {} for name in pred}
    for i, stem in enumerate(stems_):
        e = _entry("real-gt", stem, 10 if i % 2 else 4, DIMS["full"])
        gt["pann_features.pth"][stem] = e["pann"]
        gt["vggish_features.pth"][stem] = e["vggish"]
        gt["passt_features_embed.pth"][stem] = e["passt_embed"]
        gt["passt_logits.pth"][stem] = e["passt_logits"]
    return pred, gt


def fd_sets() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Small FD cases: well-conditioned, rank-deficient (fewer samples than dimensions), float64."""
    return {
        "well": (_randn("fd/well/a", (60, 8)).numpy(), (_randn("fd/well/b", (50, 8)) * 1.3 + 0.2).numpy()),
        "rank_deficient": (_randn("fd/rd/a", (6, 12)).numpy(), _randn("fd/rd/b", (7, 12)).numpy()),
        "float64": (
            _randn("fd/f64/a", (40, 5)).double().numpy(),
            (_randn("fd/f64/b", (30, 5)).double() * 0.7).numpy(),
        ),
    }


def _official(checkout: Path) -> dict[str, Any]:
    sys.path.insert(0, str(checkout))
    import transformers.pytorch_utils as tpu

    if not hasattr(tpu, "find_pruneable_heads_and_indices"):  # gone from recent transformers;
        tpu.find_pruneable_heads_and_indices = None  # the official AST only imports it (for pruning)
    import av_bench.evaluate as official
    from av_bench.metrics import compute_fd
    from av_bench.synchformer.synchformer import Synchformer

    from deepsound.testing.equivalence import fill_seeded

    torch.manual_seed(0)
    sync = fill_seeded(Synchformer(), SYNC_SEED).eval()
    state = sync.state_dict()
    metrics = {}
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp, "synchformer_state_dict.pth")
        torch.save(state, ckpt)
        official.device = "cpu"
        official._syncformer_ckpt_path = ckpt
        for size in (*DIMS, "real"):
            pred, gt = real_caches() if size == "real" else synthetic_caches(size)
            pred_dir, gt_dir = Path(tmp, size, "pred"), Path(tmp, size, "gt")
            for folder, caches in ((pred_dir, pred), (gt_dir, gt)):
                folder.mkdir(parents=True)
                for name, d in caches.items():
                    torch.save(d, folder / name)
            result = official.evaluate(gt_audio_cache=gt_dir, pred_audio_cache=pred_dir, num_samples=1)
            metrics[size] = {k: float(v) for k, v in result.items()}

    # The offset head's logits for each pair and half, as the official model gives them.
    from av_bench.utils import unroll_paired_dict

    pred, gt = synthetic_caches("small")
    video, audio, _ = unroll_paired_dict(gt["synchformer_video.pth"], pred["synchformer_audio.pth"])
    keys = [k for k in pred["synchformer_audio.pth"] if not k.startswith("orphan")]
    with torch.inference_mode():
        first = sync.compare_v_a(video[:, :14], audio[:, :14])
        last = sync.compare_v_a(video[:, -14:], audio[:, -14:])
    fd = {name: float(compute_fd(a, b)) for name, (a, b) in fd_sets().items()}
    return {
        "av_benchmark_commit": AV_BENCHMARK_COMMIT,
        "seed": SEED,
        "sync_seed": SYNC_SEED,
        "metrics": metrics,
        "sync_keys": keys,
        "sync_logits_first": first.tolist(),
        "sync_logits_last": last.tolist(),
        "fd": fd,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkout", type=Path, help="av-benchmark checkout at AV_BENCHMARK_COMMIT")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    torch.set_num_threads(1)
    golden = _official(args.checkout.resolve())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(golden, indent=1) + "\n")
    print(json.dumps(golden["metrics"], indent=1), golden["fd"])


if __name__ == "__main__":
    main()
