"""FoleyCrafter's timestamp detector: an R(2+1)D-18 onset network, and its onsets as the control map.

The network is torchvision's ``r2plus1d_18`` with the three changes the published
``timestamp_detector.pth.tar`` was trained with (CondFoleyGen's onset baseline): the temporal
stride of layers 2-4 is removed (their first temporal convolution and their shortcut keep every
frame), pooling keeps time, and a two-layer head scores each frame. Parameter names are
torchvision's under ``net.model.`` plus ``fc.``, which is the published layout, so the file loads
strictly with only its ``module.`` prefix taken off.

Two properties of the official inference are kept on purpose, because they shape its numbers:

* frames are scaled 0..255 when the ImageNet mean/std (made for 0..1) are applied;
* the network is never put in eval mode there, so every BatchNorm normalises with the clip's own
  statistics. ``batch_statistics=True`` (the default) does the same without touching the running
  averages; ``False`` uses the stored averages (what a trained network would normally use).
"""

from __future__ import annotations

import torch
import torchvision
from torch import nn

# the official detector reads a 150-frame clip and its map covers 1024 spectrogram columns for 10 s
DETECTOR_FRAMES = 150
ONSET_THRESHOLD = 0.5


class TimestampDetector(nn.Module):
    """``(B, 3, T, 112, 112)`` frames → ``(B, T)`` onset logits."""

    def __init__(self, *, batch_statistics: bool = True) -> None:
        super().__init__()
        self.net = _KeepTimeR2Plus1D()
        self.fc = nn.Sequential(nn.Linear(512, 128), nn.ReLU(True), nn.Linear(128, 1))
        self.batch_statistics = batch_statistics

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        if self.batch_statistics:
            with _batch_norm_on_batch(self):
                x = self.net(frames)
        else:
            x = self.net(frames)
        return self.fc(x.transpose(-1, -2)).squeeze(-1)


class _KeepTimeR2Plus1D(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        model = torchvision.models.video.r2plus1d_18(weights=None)
        for name, mid, cin, cout in (
            ("layer2", 230, 64, 128),
            ("layer3", 460, 128, 256),
            ("layer4", 921, 256, 512),
        ):
            block = getattr(model, name)[0]
            block.conv1[0][3] = nn.Conv3d(
                mid, cout, (3, 1, 1), stride=(1, 1, 1), padding=(1, 0, 0), bias=False
            )
            block.downsample = nn.Sequential(
                nn.Conv3d(cin, cout, (1, 1, 1), stride=(1, 2, 2), bias=False), nn.BatchNorm3d(cout)
            )
        model.avgpool = nn.AdaptiveAvgPool3d((None, 1, 1))
        model.fc = nn.Identity()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # torchvision's own forward would flatten time into channels after pooling; keep (B, 512, T)
        m = self.model
        x = m.layer4(m.layer3(m.layer2(m.layer1(m.stem(x)))))
        return m.avgpool(x).flatten(2)


class _batch_norm_on_batch:
    """BatchNorm layers normalise with the input's statistics; running averages stay untouched."""

    def __init__(self, module: nn.Module) -> None:
        self.norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]

    def __enter__(self) -> None:
        self.saved = [(m.training, m.momentum) for m in self.norms]
        for m in self.norms:
            m.train()
            m.momentum = 0.0  # running = (1 - 0) * running + 0 * batch: unchanged

    def __exit__(self, *exc: object) -> None:
        for m, (training, momentum) in zip(self.norms, self.saved, strict=True):
            m.train(training)
            m.momentum = momentum


def onset_condition(
    probabilities: torch.Tensor,
    duration: float,
    *,
    width: int = 1024,
    height: int = 256,
    seconds: float = 10.0,
) -> torch.Tensor:
    """The control map of the official inference: ``(1, 1, height, width)`` of ±1.

    Column ``i`` of the first ``int(width / seconds * duration)`` columns is +1 when the detector's
    frame ``int(i / columns * frames)`` scores at least 0.5; the rest of the canvas is -1. A clip
    longer than ``seconds`` gives more columns than the canvas holds; the official pipeline then
    squeezes the map back to ``width`` columns (nearest neighbour), which is done here the same way.
    """
    probs = probabilities.reshape(-1).float().cpu()
    frames = probs.shape[0]
    columns = int(width / seconds * duration)
    index = (torch.arange(columns, dtype=torch.float64) / (width / seconds * duration) * frames).long()
    row = torch.where(probs[index] < ONSET_THRESHOLD, -1.0, 1.0)
    if columns < width:
        row = torch.cat([row, torch.full((width - columns,), -1.0)])
    condition = row.reshape(1, 1, 1, -1).repeat(1, 1, height, 1)
    if columns > width:
        condition = nn.functional.interpolate(condition, size=(height, width))
    return condition
