"""PANNs Cnn14 at 16 kHz, as av-benchmark runs it for FD_PANNs, KL_PANNs and IS.

Weight-compatible with ``Cnn14_16k_mAP=0.438.pth`` (Kong et al., PANNs): the
checkpoint's ``{"model": state_dict}`` loads strictly, including its stored STFT
convolution kernels and mel matrix, which are used as stored. av-benchmark builds
the model from its ``Cnn14`` class (the ``features_list`` variant with window 512,
hop 160, 64 mels, 50-8000 Hz) and caches, per file, the dict this module's
:func:`panns_features` returns::

    {"logits": [527], "2048": [2048], "clipwise_output": [527]}

``"2048"`` is the ReLU of ``fc1`` (the embedding of FD_PANNs), ``logits`` the
AudioSet head before the sigmoid (KL and IS use them), ``clipwise_output`` its sigmoid.
Inference only: dropout and SpecAugment are training-time operations and absent.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from deepsound.models.eval.frontends import dft_conv_kernels, slaney_mel_filterbank
from deepsound.weights.loading import LoadRules, load_published

SAMPLE_RATE = 16000
WINDOW = 512
HOP = 160
MEL_BINS = 64
FMIN = 50
FMAX = 8000
CLASSES = 527
EMBEDDING_DIM = 2048
CACHE_FILE = "pann_features.pth"
"""av-benchmark's cache: ``{stem: {"logits", "2048", "clipwise_output"}}``."""

REGISTRY_NAME = "panns_cnn14_16k"
LOAD_RULES = LoadRules(unwrap=("model",))


class _Conv1d(nn.Module):
    """Holds a stored STFT kernel under the checkpoint's ``conv_real.weight`` name."""

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight, requires_grad=False)


class _STFT(nn.Module):
    def __init__(self, n_fft: int) -> None:
        super().__init__()
        real, imag = dft_conv_kernels(n_fft)
        self.conv_real = _Conv1d(real)
        self.conv_imag = _Conv1d(imag)


class Spectrogram(nn.Module):
    """Power spectrogram by strided convolution with the stored DFT kernels (centre, reflect pad)."""

    def __init__(self, n_fft: int = WINDOW, hop: int = HOP) -> None:
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        self.stft = _STFT(n_fft)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        x = F.pad(wave[:, None, :], (self.n_fft // 2, self.n_fft // 2), mode="reflect")
        real = F.conv1d(x, self.stft.conv_real.weight, stride=self.hop)
        imag = F.conv1d(x, self.stft.conv_imag.weight, stride=self.hop)
        return (real**2 + imag**2)[:, None].transpose(2, 3)  # (B, 1, frames, bins)


class LogmelFilterBank(nn.Module):
    """``10 log10(max(power @ melW, 1e-10))`` with the stored ``melW`` (ref 1, no top-dB clip)."""

    def __init__(self) -> None:
        super().__init__()
        self.melW = nn.Parameter(
            slaney_mel_filterbank(SAMPLE_RATE, WINDOW, MEL_BINS, FMIN, FMAX), requires_grad=False
        )

    def forward(self, power: torch.Tensor) -> torch.Tensor:
        return 10.0 * torch.log10(torch.clamp(torch.matmul(power, self.melW), min=1e-10))


class ConvBlock(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.bn2 = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor, pool: tuple[int, int]) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return F.avg_pool2d(x, kernel_size=pool)


class Cnn14(nn.Module):
    """Cnn14 with its log-mel front end; ``forward(wave[B, T])`` -> the av-benchmark feature dict."""

    def __init__(self) -> None:
        super().__init__()
        self.spectrogram_extractor = Spectrogram()
        self.logmel_extractor = LogmelFilterBank()
        self.bn0 = nn.BatchNorm2d(MEL_BINS)
        widths = (1, 64, 128, 256, 512, 1024, 2048)
        for i in range(6):
            self.add_module(f"conv_block{i + 1}", ConvBlock(widths[i], widths[i + 1]))
        self.fc1 = nn.Linear(EMBEDDING_DIM, EMBEDDING_DIM)
        self.fc_audioset = nn.Linear(EMBEDDING_DIM, CLASSES)

    def forward(self, wave: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.logmel_extractor(self.spectrogram_extractor(wave))  # (B, 1, frames, mels)
        x = self.bn0(x.transpose(1, 3)).transpose(1, 3)
        for i in range(6):
            block: ConvBlock = getattr(self, f"conv_block{i + 1}")
            x = block(x, (2, 2) if i < 5 else (1, 1))
        x = x.mean(dim=3)
        x = x.max(dim=2).values + x.mean(dim=2)
        hidden = F.relu(self.fc1(x))
        logits = self.fc_audioset(hidden)
        return {"logits": logits, "2048": hidden, "clipwise_output": torch.sigmoid(logits)}


def load_panns(
    path: Path | str | None = None,
    device: str = "auto",
    *,
    weights_dir: Path | None = None,
    offline: bool = False,
) -> Cnn14:
    """Cnn14 (16 kHz) from ``Cnn14_16k_mAP=0.438.pth`` (strict), in eval mode on ``device``.

    ``path`` is a file or a folder; without it the registry entry ``panns_cnn14_16k`` is looked up
    in ``weights_dir``, the cache, and downloaded unless ``offline``.
    """
    model = load_published(
        Cnn14(),
        REGISTRY_NAME,
        "PANNs Cnn14 16 kHz",
        LOAD_RULES,
        path=path,
        weights_dir=weights_dir,
        offline=offline,
        device=device,
    )
    return model  # type: ignore[return-value]


@torch.inference_mode()
def panns_features(model: Cnn14, waveform_16k: torch.Tensor) -> dict[str, torch.Tensor]:
    """``(B, T)`` 16 kHz mono -> ``{"logits": [B,527], "2048": [B,2048], "clipwise_output": [B,527]}`` (float32, CPU).

    The waveform is what :func:`deepsound.evaluation.audio.load_for_features` gives at
    16 kHz (no padding: a shorter clip gives fewer frames, as in av-benchmark).
    """
    device = next(model.parameters()).device
    out = model(waveform_16k.to(device=device, dtype=torch.float32))
    return {k: v.float().cpu() for k, v in out.items()}
