"""The vision-language connector ``stc_connector_v35`` and the ``mlp<N>x_gelu`` projectors.

The connector is VideoLLaMA2's spatial-temporal convolution: a RegNet stage
over each frame's patch grid, a 2x2x2 3-D convolution that halves time,
height and width, a second RegNet stage and a two-layer readout MLP. The
RegNet stages are timm's own ``RegStage`` with ``LayerNorm2d`` and SiLU, the
building blocks the original uses, so parameter names (``s1.b1.conv1.conv.weight``
…) and numerics are timm's by construction.
"""

from __future__ import annotations

import re

import torch
from torch import nn


def mlp(depth: int, in_features: int, out_features: int) -> nn.Sequential:
    """``Linear`` then ``depth - 1`` × (GELU, ``Linear``), the ``mlp<depth>x_gelu`` layout."""
    layers: list[nn.Module] = [nn.Linear(in_features, out_features)]
    for _ in range(1, depth):
        layers += [nn.GELU(), nn.Linear(out_features, out_features)]
    return nn.Sequential(*layers)


def projector(kind: str, in_features: int, out_features: int) -> nn.Module:
    """``linear`` or ``mlp<N>x_gelu`` (the audio projector of the published models is ``mlp2x_gelu``)."""
    if kind == "linear":
        return nn.Linear(in_features, out_features)
    match = re.fullmatch(r"mlp(\d+)x_gelu", kind)
    if match is None:
        from deepsound.errors import ConfigError

        raise ConfigError(f"unsupported projector type {kind!r} (supported: linear, mlp<N>x_gelu)")
    return mlp(int(match.group(1)), in_features, out_features)


class StcConnectorV35(nn.Module):
    """``(B, T, N, C)`` frame features (N a square patch grid) → ``(B, T/2 · √N/2 · √N/2, hidden)`` tokens."""

    def __init__(self, in_features: int, hidden: int, *, depth: int = 4, mlp_depth: int = 2) -> None:
        super().__init__()
        from timm.layers import LayerNorm2d
        from timm.models.regnet import RegStage

        def stage(channels_in: int) -> nn.Module:
            return RegStage(
                depth=depth,
                in_chs=channels_in,
                out_chs=hidden,
                stride=1,
                dilation=1,
                act_layer=nn.SiLU,
                norm_layer=LayerNorm2d,
            )

        self.s1 = stage(in_features)
        self.sampler = nn.Sequential(nn.Conv3d(hidden, hidden, kernel_size=2, stride=2, padding=0), nn.SiLU())
        self.s2 = stage(hidden)
        self.readout = mlp(mlp_depth, hidden, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, frames, patches, channels = x.shape
        side = int(patches**0.5)
        x = x.reshape(batch * frames, side, side, channels).permute(0, 3, 1, 2)
        x = self.s1(x)
        x = x.reshape(batch, frames, *x.shape[1:]).permute(0, 2, 1, 3, 4)  # b d t h w
        x = self.sampler(x)
        frames = x.shape[2]
        x = x.permute(0, 2, 1, 3, 4).reshape(batch * frames, *x.shape[1:2], *x.shape[3:])
        x = self.s2(x)
        x = x.reshape(batch, frames, *x.shape[1:]).permute(0, 1, 3, 4, 2).reshape(batch, -1, x.shape[1])
        return self.readout(x)
