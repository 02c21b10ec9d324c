"""VGGish as av-benchmark uses it for FD_VGG: 128-d embeddings per 0.96 s example.

Weight-compatible with torchvggish's ``vggish-10086976.pth`` (``features.*`` and
``embeddings.*``; the file's PCA tensors, if any, are not used). As in
av-benchmark (following audioldm_eval) the last ReLU of the embedding stack is
removed and no PCA/quantisation post-processing is applied. The input examples
are the reference ``waveform_to_examples`` log-mel patches
(:func:`~deepsound.models.eval.frontends.vggish_examples`).

av-benchmark caches, per file, one ``[N, 128]`` tensor (``N`` examples: 10 for a
10 s clip); :func:`vggish_features` returns them batched, ``[B, N, 128]``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from deepsound.models.eval.frontends import vggish_examples
from deepsound.weights.loading import LoadRules, load_published

SAMPLE_RATE = 16000
EMBEDDING_DIM = 128
CACHE_FILE = "vggish_features.pth"
"""av-benchmark's cache: ``{stem: Tensor[N, 128]}``."""

REGISTRY_NAME = "vggish"
LOAD_RULES = LoadRules(drop=(r"^pproc\.",))


def _features() -> nn.Sequential:
    layers: list[nn.Module] = []
    cin = 1
    for v in (64, "M", 128, "M", 256, 256, "M", 512, 512, "M"):
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(cin, int(v), 3, padding=1), nn.ReLU(inplace=True)]
            cin = int(v)
    return nn.Sequential(*layers)


class VGGish(nn.Module):
    """``forward(examples[M, 1, 96, 64])`` -> ``[M, 128]`` (no final ReLU)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = _features()
        self.embeddings = nn.Sequential(
            nn.Linear(512 * 4 * 6, 4096),
            nn.ReLU(True),
            nn.Linear(4096, 4096),
            nn.ReLU(True),
            nn.Linear(4096, EMBEDDING_DIM),
        )

    def forward(self, examples: torch.Tensor) -> torch.Tensor:
        x = self.features(examples)
        # TensorFlow's NHWC flatten order, which the converted weights expect.
        x = x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)
        return self.embeddings(x)


def load_vggish(
    path: Path | str | None = None,
    device: str = "auto",
    *,
    weights_dir: Path | None = None,
    offline: bool = False,
) -> VGGish:
    """VGGish from ``vggish-10086976.pth`` (strict on ``features``/``embeddings``), eval mode.

    ``path`` is a file or a folder; without it the registry entry ``vggish`` is looked up
    in ``weights_dir``, the cache, and downloaded unless ``offline``.
    """
    model = load_published(
        VGGish(),
        REGISTRY_NAME,
        "VGGish",
        LOAD_RULES,
        path=path,
        weights_dir=weights_dir,
        offline=offline,
        device=device,
    )
    return model  # type: ignore[return-value]


@torch.inference_mode()
def vggish_features(model: VGGish, waveform_16k: torch.Tensor) -> torch.Tensor:
    """``(B, T)`` 16 kHz mono -> ``[B, N, 128]`` float32 on the CPU (N examples of 0.96 s)."""
    examples = vggish_examples(waveform_16k.cpu())
    batch, pieces = examples.shape[:2]
    device = next(model.parameters()).device
    flat = examples.reshape(batch * pieces, 1, *examples.shape[2:]).to(device)
    return model(flat).reshape(batch, pieces, -1).float().cpu()
