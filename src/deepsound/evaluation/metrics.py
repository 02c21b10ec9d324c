"""The paper's metrics, with av-benchmark's numerics and its pairing of files.

Every number the paper reports comes from av-benchmark's ``evaluate`` stage,
which reads per-file feature dictionaries (stem → tensor) and turns them into
FD, KL, IS, IB-score and DeSync. Claims only compare when the arithmetic is
the same, down to details that move the third digit:

* **FD** takes the mean in the features' own precision (float32 for the caches)
  but the covariance in float64 (``np.cov`` promotes), multiplies the two
  covariances and takes ``scipy.linalg.sqrtm``; when that is not finite it adds
  ``1e-6`` to both diagonals and tries again; an imaginary part above ``1e-3``
  on the diagonal makes the score ``-1`` (av-benchmark's value for "failed").
  The first argument is the generated set.
* **Pairing**: FD-PaSST, KL-PaSST, IB-score and DeSync pair generated and
  reference files by stem after :func:`clean_sample_name` (which maps
  VGGSound-style generated names such as ``000000014_zxpo56cpUBU_000007-0`` to
  ``zxpo56cpUBU_000007``); KL-PANNs pairs by the exact stem. FD-PANNs and FD-VGG
  are unpaired (all files of each side; VGGish stacks every 0.96 s example).
* **KL** is ``KL(reference ‖ generated)`` of the softmax, summed over classes and
  pairs, divided by the number of pairs, in float32.
* **IS** shuffles the generated PANNs logits with ``RandomState(2020)``, in the
  cache's order (files sorted by stem), and averages ``exp(mean KL(p ‖ p̄))``
  over 10 splits in float64.
* **DeSync** asks Synchformer's offset head about the first and the last 14
  feature segments (4.8 s) of each pair and averages the absolute offsets of the
  21-class grid from -2 s to 2 s.

The functions use numpy, scipy and torch for the arithmetic itself (the same
routines av-benchmark calls), so equality to its results is exact, not
approximate; ``tests/test_evaluation_metrics.py`` checks that against goldens
made by running the official code.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)

FD_EPS = 1e-6
IS_SEED = 2020
IS_SPLITS = 10
SYNC_GRID = (-2.0, 2.0, 21)  # seconds: leftmost, rightmost, number of classes
SYNC_SEGMENTS = 14  # 14 segments of 0.64 s with a 0.32 s step = the first / last 4.8 s
SYNC_BATCH = 16

_VGGSOUND_PREFIXED = "000000014_zxpo56cpUBU_000007-0"
_VGGSOUND_SUFFIXED = "zxpo56cpUBU_000007-0"
_AUDIOSET_STYLE = "Y---g-f_I2yQ_000001_0"
_VGGSOUND_ID = "zxpo56cpUBU_000007"


def clean_sample_name(name: str) -> str:
    """A generated file's reference stem, by av-benchmark's rule (which goes by length only).

    ``000000014_<id>_<start>-<k>`` and ``<id>_<start>-<k>`` become ``<id>_<start>``,
    ``Y<id>_<start>_<k>`` becomes ``<id>_<start>``; any other stem is its own name.
    """
    n = len(name)
    if n == len(_VGGSOUND_PREFIXED):
        start = _VGGSOUND_PREFIXED.find(_VGGSOUND_ID)
        return name[start : start + len(_VGGSOUND_ID)]
    if n == len(_VGGSOUND_SUFFIXED):
        return name[: len(_VGGSOUND_ID)]
    if n == len(_AUDIOSET_STYLE):
        return name[1 : 1 + len(_VGGSOUND_ID)]
    return name


@dataclass
class Pairing:
    """Generated/reference entries matched by stem, in the generated side's order."""

    pred_keys: list[str]
    gt_keys: list[str]
    unpaired: list[str] = field(default_factory=list)

    def stack(self, pred: Mapping[str, Any], gt: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        return (
            torch.stack([_tensor(pred[k]) for k in self.pred_keys]),
            torch.stack([_tensor(gt[k]) for k in self.gt_keys]),
        )


def pair_cleaned(pred: Mapping[str, Any], gt: Mapping[str, Any]) -> Pairing:
    """av-benchmark's pairing for PaSST, ImageBind and Synchformer: cleaned generated stems.

    A cleaned name found on one side only is "unpaired" (the symmetric
    difference, as av-benchmark logs it); several generated files may pair
    with the same reference file.
    """
    cleaned = {k: clean_sample_name(k) for k in pred}
    unpaired = set(gt) ^ set(cleaned.values())
    keys = [k for k, name in cleaned.items() if name not in unpaired]
    return Pairing(keys, [cleaned[k] for k in keys], sorted(unpaired))


def pair_exact(pred: Mapping[str, Any], gt: Mapping[str, Any]) -> Pairing:
    """av-benchmark's pairing for the PANNs KL: the exact stem, generated files missing on the
    reference side left out."""
    keys = [k for k in pred if k in gt]
    return Pairing(keys, keys, sorted(set(pred) ^ set(gt)))


def _tensor(value: Any) -> torch.Tensor:
    return value if isinstance(value, torch.Tensor) else torch.as_tensor(value)


def _sqrtm(matrix: np.ndarray) -> np.ndarray:
    try:
        from scipy import linalg
    except ImportError:
        from deepsound.errors import ConfigError

        raise ConfigError("FD needs scipy: pip install 'deepsound[eval]'") from None

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # singular products: handled by the caller
        return linalg.sqrtm(matrix)


def frechet_distance(pred: np.ndarray, gt: np.ndarray, eps: float = FD_EPS) -> float:
    """FD between the Gaussians fitted to two sets of embeddings (rows are samples).

    Mean in the input's precision, covariance in float64, as av-benchmark does;
    returns ``-1.0`` where av-benchmark does (an imaginary component it cannot
    ignore) and logs why.
    """
    mu1, mu2 = np.atleast_1d(np.mean(pred, axis=0)), np.atleast_1d(np.mean(gt, axis=0))
    sigma1 = np.atleast_2d(np.cov(pred, rowvar=False))
    sigma2 = np.atleast_2d(np.cov(gt, rowvar=False))
    if mu1.shape != mu2.shape:
        raise ValueError(f"embedding sizes differ: {mu1.shape} vs {mu2.shape}")
    diff = mu1 - mu2
    covmean = _sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        log.warning("FD: singular covariance product; adding %g to the diagonals", eps)
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = _sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            log.warning("FD: imaginary component %g; reported as -1", np.max(np.abs(covmean.imag)))
            return -1.0
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def kl_softmax(pred_logits: torch.Tensor, gt_logits: torch.Tensor) -> tuple[float, list[float]]:
    """Mean ``KL(gt ‖ pred)`` of the class softmax (AudioGen's form), and the value of each pair."""
    log_p, log_q = F.log_softmax(pred_logits, dim=1), F.log_softmax(gt_logits, dim=1)
    total = F.kl_div(log_p, log_q, reduction="sum", log_target=True) / len(pred_logits)
    per_pair = F.kl_div(log_p, log_q, reduction="none", log_target=True).sum(dim=1)
    return float(total), [float(v) for v in per_pair]


def inception_score(
    logits: torch.Tensor, splits: int = IS_SPLITS, seed: int | None = IS_SEED
) -> tuple[float, float]:
    """Mean and standard deviation of the inception score over ``splits`` shuffled chunks."""
    if logits.dim() != 2:
        raise ValueError(f"logits must be (samples, classes), got {tuple(logits.shape)}")
    n = logits.shape[0]
    if seed is not None:
        logits = logits[np.random.RandomState(seed).permutation(n), :]
    logits = logits.double()
    p, log_p = logits.softmax(dim=1), logits.log_softmax(dim=1)
    scores = []
    for i in range(splits):
        lo, hi = i * n // splits, (i + 1) * n // splits
        p_chunk, log_chunk = p[lo:hi], log_p[lo:hi]
        q = p_chunk.mean(dim=0, keepdim=True)
        scores.append((p_chunk * (log_chunk - q.log())).sum(dim=1).mean().exp().item())
    return float(np.mean(scores)), float(np.std(scores))


def ib_scores(video: torch.Tensor, audio: torch.Tensor) -> tuple[float, list[float]]:
    """ImageBind score: cosine similarity of paired video and audio embeddings (mean, per pair)."""
    sims = torch.cosine_similarity(video, audio, dim=-1)
    return sims.mean().item(), [float(v) for v in sims]


def sync_grid() -> torch.Tensor:
    """The 21 offsets (seconds) Synchformer's head classifies, as float32 like Synchformer's."""
    lo, hi, n = SYNC_GRID
    return torch.from_numpy(np.linspace(lo, hi, n)).float()


Compare = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def desync(
    video: torch.Tensor, audio: torch.Tensor, compare: Compare, batch_size: int = SYNC_BATCH
) -> tuple[float, list[tuple[float, float]]]:
    """Mean absolute offset over the first and the last 4.8 s of each pair, and each pair's two offsets.

    ``video``/``audio`` are Synchformer features ``(N, segments, tokens, dim)``;
    ``compare`` is the offset head (``Synchformer.compare_v_a``), giving logits
    over the 21-class grid.
    """
    if video.shape[1] < SYNC_SEGMENTS or audio.shape[1] < SYNC_SEGMENTS:
        raise ValueError(
            f"DeSync needs at least {SYNC_SEGMENTS} segments (4.8 s); got video {video.shape[1]}, "
            f"audio {audio.shape[1]}"
        )
    grid = sync_grid()
    first: list[float] = []
    last: list[float] = []
    for i in range(0, video.shape[0], batch_size):
        v, a = video[i : i + batch_size], audio[i : i + batch_size]
        for part, out in ((slice(None, SYNC_SEGMENTS), first), (slice(-SYNC_SEGMENTS, None), last)):
            top = torch.argmax(compare(v[:, part], a[:, part]), dim=-1).cpu().numpy()
            out.extend(abs(grid[j].item()) for j in top)
    # av-benchmark appends a batch's first halves, then its last halves; the mean is the same
    # whichever way, but the order of the sum is kept too.
    ordered: list[float] = []
    for i in range(0, len(first), batch_size):
        ordered += first[i : i + batch_size] + last[i : i + batch_size]
    return float(np.mean(ordered)), list(zip(first, last, strict=True))


# ---------------------------------------------------------------------- all metrics from caches
PANNS_FILE = "pann_features.pth"
VGGISH_FILE = "vggish_features.pth"
PASST_EMBED_FILE = "passt_features_embed.pth"
PASST_LOGITS_FILE = "passt_logits.pth"
IB_AUDIO_FILE = "imagebind_audio.pth"
IB_VIDEO_FILE = "imagebind_video.pth"
SYNC_AUDIO_FILE = "synchformer_audio.pth"
SYNC_VIDEO_FILE = "synchformer_video.pth"

METRIC_KEYS = ("fd_passt", "fd_panns", "fd_vgg", "kl_panns", "kl_passt", "is_panns", "ib_score", "desync")
# av-benchmark's own names for the same numbers (its output_metrics.json)
OFFICIAL_NAMES = {
    "fd_vgg": "FD-VGG",
    "fd_panns": "FD-PANN",
    "fd_passt": "FD-PASST",
    "kl_panns": "KL-PANNS-softmax",
    "kl_passt": "KL-PASST-softmax",
    "is_panns": "ISC-PANNS-mean",
    "is_panns_std": "ISC-PANNS-std",
    "is_passt": "ISC-PASST-mean",
    "is_passt_std": "ISC-PASST-std",
    "ib_score": "IB-Score",
    "desync": "DeSync",
}

Caches = Mapping[str, Mapping[str, Any]]  # cache file name -> {stem: entry}


@dataclass
class MetricResult:
    """The scores, each clip's share of them, and what could not be computed and why."""

    scores: dict[str, float | None] = field(default_factory=dict)
    per_clip: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    pairs: dict[str, int] = field(default_factory=dict)

    def clip(self, stem: str) -> dict[str, Any]:
        return self.per_clip.setdefault(stem, {})

    def official(self) -> dict[str, float]:
        return {OFFICIAL_NAMES[k]: v for k, v in self.scores.items() if k in OFFICIAL_NAMES and v is not None}


def compute_metrics(
    pred: Caches, gt: Caches, compare: Compare | None = None, skip: frozenset[str] = frozenset()
) -> MetricResult:
    """Everything av-benchmark's ``evaluate`` computes (paired mode, one sample per file), from caches.

    A metric whose caches are absent on either side, or that has no pairs, is
    ``None`` with a note; ``compare`` (Synchformer's offset head) is needed for DeSync.
    ``skip`` names metrics not to compute (FD-PANNs costs a 2048×2048 matrix square root).
    """
    out = MetricResult()

    def have(name: str, pred_file: str, gt_file: str | None = None) -> bool:
        gt_file = gt_file or pred_file
        if pred.get(pred_file) and gt.get(gt_file):
            return True
        out.notes.append(f"{name}: no {pred_file if not pred.get(pred_file) else gt_file} features")
        return False

    if have("fd_vgg", VGGISH_FILE):
        p = torch.cat([_tensor(v) for v in pred[VGGISH_FILE].values()]).numpy()
        g = torch.cat([_tensor(v) for v in gt[VGGISH_FILE].values()]).numpy()
        out.scores["fd_vgg"] = frechet_distance(p, g)
    if have("panns", PANNS_FILE):
        _panns(pred[PANNS_FILE], gt[PANNS_FILE], out, fd="fd_panns" not in skip)
    if have("passt", PASST_EMBED_FILE) and have("passt", PASST_LOGITS_FILE):
        _passt(pred, gt, out)
    if have("ib_score", IB_AUDIO_FILE, IB_VIDEO_FILE):
        pairing = pair_cleaned(pred[IB_AUDIO_FILE], gt[IB_VIDEO_FILE])
        if _paired("ib_score", pairing, out):
            audio, video = pairing.stack(pred[IB_AUDIO_FILE], gt[IB_VIDEO_FILE])
            out.scores["ib_score"], sims = ib_scores(video, audio)
            for stem, s in zip(pairing.pred_keys, sims, strict=True):
                out.clip(stem)["ib_score"] = s
    if have("desync", SYNC_AUDIO_FILE, SYNC_VIDEO_FILE):
        pairing = pair_cleaned(pred[SYNC_AUDIO_FILE], gt[SYNC_VIDEO_FILE])
        if compare is None:
            out.notes.append("desync: no Synchformer offset head")
        elif _paired("desync", pairing, out):
            audio, video = pairing.stack(pred[SYNC_AUDIO_FILE], gt[SYNC_VIDEO_FILE])
            out.scores["desync"], offsets = desync(video, audio, compare)
            for stem, (a, b) in zip(pairing.pred_keys, offsets, strict=True):
                out.clip(stem).update(desync=(a + b) / 2, desync_first=a, desync_last=b)
    for key in METRIC_KEYS:
        out.scores.setdefault(key, None)
    return out


def _paired(name: str, pairing: Pairing, out: MetricResult) -> bool:
    out.pairs[name] = len(pairing.pred_keys)
    if pairing.unpaired:
        out.notes.append(f"{name}: unpaired {len(pairing.unpaired)}: {', '.join(pairing.unpaired[:5])}")
    if not pairing.pred_keys:
        out.notes.append(f"{name}: no generated file pairs with a reference file")
        return False
    return True


def _panns(pred: Mapping[str, Any], gt: Mapping[str, Any], out: MetricResult, fd: bool = True) -> None:
    def stacked(d: Mapping[str, Any], key: str) -> torch.Tensor:
        return torch.stack([_tensor(v[key]) for v in d.values()])

    if fd:
        out.scores["fd_panns"] = frechet_distance(stacked(pred, "2048").numpy(), stacked(gt, "2048").numpy())
    pairing = pair_exact(pred, gt)
    if _paired("kl_panns", pairing, out):
        p = torch.stack([_tensor(pred[k]["logits"]) for k in pairing.pred_keys])
        g = torch.stack([_tensor(gt[k]["logits"]) for k in pairing.gt_keys])
        out.scores["kl_panns"], per = kl_softmax(p, g)
        for stem, v in zip(pairing.pred_keys, per, strict=True):
            out.clip(stem)["kl_panns"] = v
    if len(pred) < IS_SPLITS:
        out.notes.append(f"is_panns: {len(pred)} files for {IS_SPLITS} splits; empty splits make it NaN")
    out.scores["is_panns"], out.scores["is_panns_std"] = inception_score(stacked(pred, "logits"))


def _passt(pred: Caches, gt: Caches, out: MetricResult) -> None:
    pairing = pair_cleaned(pred[PASST_EMBED_FILE], gt[PASST_EMBED_FILE])
    if not _paired("fd_passt", pairing, out):
        return
    p, g = pairing.stack(pred[PASST_EMBED_FILE], gt[PASST_EMBED_FILE])
    out.scores["fd_passt"] = frechet_distance(p.numpy(), g.numpy())
    pairing = pair_cleaned(pred[PASST_LOGITS_FILE], gt[PASST_LOGITS_FILE])
    if not _paired("kl_passt", pairing, out):
        return
    p, g = pairing.stack(pred[PASST_LOGITS_FILE], gt[PASST_LOGITS_FILE])
    out.scores["kl_passt"], per = kl_softmax(p, g)
    for stem, v in zip(pairing.pred_keys, per, strict=True):
        out.clip(stem)["kl_passt"] = v
    out.scores["is_passt"], out.scores["is_passt_std"] = inception_score(p)
