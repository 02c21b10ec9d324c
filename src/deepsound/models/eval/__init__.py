"""The feature models of av-benchmark, the benchmark behind the paper's numbers.

Audio models (this file's public API; each loads its published checkpoint strictly
through :mod:`deepsound.weights.loading` and returns exactly what av-benchmark
caches per file, batched)::

    from deepsound.evaluation.audio import load_for_features      # 16 kHz / 32 kHz, 10 s crop
    from deepsound.models.eval import (load_panns, panns_features,
                                       load_vggish, vggish_features,
                                       load_passt, passt_features)

    wav16 = load_for_features(path, 16000)[None]      # (1, T) float32
    wav32 = load_for_features(path, 32000)[None]
    # or decode once: load_feature_inputs(path) -> {16000: (T,), 32000: (T,)}

    panns_features(load_panns(ckpt, "cuda"), wav16)
        -> {"logits": [B,527], "2048": [B,2048], "clipwise_output": [B,527]}
           cache ``pann_features.pth``: {stem: {that dict, per item}}
    vggish_features(load_vggish(ckpt), wav16)
        -> Tensor[B, N, 128]   (N = 10 for 10 s) cache ``vggish_features.pth``: {stem: [N,128]}
    passt_features(load_passt(ckpt), wav32)        # pads/crops to 10 s itself
        -> {"features_embed": [B,768], "logits": [B,527]}
           caches ``passt_features_embed.pth`` / ``passt_logits.pth``: {stem: [768]} / {stem: [527]}

Checkpoints (registry names in :mod:`deepsound.weights.registry`):
``panns_cnn14_16k`` (``Cnn14_16k_mAP=0.438.pth``), ``vggish`` (``vggish-10086976.pth``),
``passt_s_swa`` (``passt-s-f128-p16-s10-ap.476-swa.pt``). Batching several clips
needs equal lengths (av-benchmark batches ground truth one file at a time).

Why these are written here rather than imported: the PyPI packages that hold them
(panns-inference, torchvggish, hear21passt) import torchaudio or download weights at
import or construction time, and none exposes av-benchmark's exact variant (Cnn14's
``features_list`` outputs, VGGish without its last ReLU).
"""

from __future__ import annotations

from deepsound.models.eval.panns import Cnn14, load_panns, panns_features
from deepsound.models.eval.passt import PaSST, load_passt, passt_features
from deepsound.models.eval.vggish import VGGish, load_vggish, vggish_features

__all__ = [
    "Cnn14",
    "PaSST",
    "VGGish",
    "load_panns",
    "load_passt",
    "load_vggish",
    "panns_features",
    "passt_features",
    "vggish_features",
]
