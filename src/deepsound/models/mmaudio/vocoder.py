"""BigVGAN mel-to-waveform vocoders used by MMAudio.

* 16 kHz: BigVGAN (v1 architecture) trained for MMAudio's 80-bin mels,
  published as ``best_netG.pt`` (``{"generator": state_dict}``).
* 44.1 kHz: NVIDIA's BigVGAN-v2 ``bigvgan_v2_44khz_128band_512x``
  (``bigvgan_generator.pt`` + ``config.json``).

Both share one architecture; the published configurations are encoded in
:data:`BIGVGAN_16K` and :data:`BIGVGAN_V2_44K`, and a ``config.json`` can be
read with :meth:`BigVGANConfig.from_json`.

Checkpoints store convolutions with weight normalisation, either as
``weight_g``/``weight_v`` or as ``parametrizations.weight.original0/1``. The
vocoder is only ever used for inference, where the effective weight
``g * v / ||v||`` is constant, so :func:`fold_weight_norm` computes it once
while loading and the network runs plain convolutions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path

import torch
from torch import nn

from deepsound.errors import WeightsError
from deepsound.models.mmaudio.bigvgan_layers import AMPBlock1, AMPBlock2, make_activation
from deepsound.weights.loading import load_state_into, read_state_dict


@dataclass(frozen=True)
class BigVGANConfig:
    num_mels: int
    upsample_rates: tuple[int, ...]
    upsample_kernel_sizes: tuple[int, ...]
    upsample_initial_channel: int
    resblock_kernel_sizes: tuple[int, ...]
    resblock_dilation_sizes: tuple[tuple[int, ...], ...]
    sampling_rate: int
    resblock: str = "1"
    activation: str = "snakebeta"
    snake_logscale: bool = True
    use_bias_at_final: bool = True
    use_tanh_at_final: bool = True  # False: clamp to [-1, 1] instead

    @property
    def hop_length(self) -> int:
        hop = 1
        for r in self.upsample_rates:
            hop *= r
        return hop

    @classmethod
    def from_dict(cls, data: dict) -> BigVGANConfig:
        """Keep the architecture fields of a training config (the rest is about training)."""
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        for key in ("upsample_rates", "upsample_kernel_sizes", "resblock_kernel_sizes"):
            if key in kwargs:
                kwargs[key] = tuple(kwargs[key])
        if "resblock_dilation_sizes" in kwargs:
            kwargs["resblock_dilation_sizes"] = tuple(tuple(d) for d in kwargs["resblock_dilation_sizes"])
        return cls(**kwargs)

    @classmethod
    def from_json(cls, path: Path) -> BigVGANConfig:
        path = Path(path)
        try:
            return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError as exc:
            raise WeightsError(f"{path}: vocoder config not found") from exc
        except (json.JSONDecodeError, TypeError, ValueError) as exc:
            raise WeightsError(f"{path}: not a usable BigVGAN config.json ({exc})") from exc


# MMAudio's 16 kHz vocoder (mmaudio/ext/bigvgan/bigvgan_vocoder.yml).
BIGVGAN_16K = BigVGANConfig(
    num_mels=80,
    upsample_rates=(4, 4, 2, 2, 2, 2),
    upsample_kernel_sizes=(8, 8, 4, 4, 4, 4),
    upsample_initial_channel=1536,
    resblock_kernel_sizes=(3, 7, 11),
    resblock_dilation_sizes=((1, 3, 5), (1, 3, 5), (1, 3, 5)),
    sampling_rate=16_000,
)

# nvidia/bigvgan_v2_44khz_128band_512x config.json (architecture fields).
BIGVGAN_V2_44K = BigVGANConfig(
    num_mels=128,
    upsample_rates=(8, 4, 2, 2, 2, 2),
    upsample_kernel_sizes=(16, 8, 4, 4, 4, 4),
    upsample_initial_channel=1536,
    resblock_kernel_sizes=(3, 7, 11),
    resblock_dilation_sizes=((1, 3, 5), (1, 3, 5), (1, 3, 5)),
    sampling_rate=44_100,
    use_bias_at_final=False,
    use_tanh_at_final=False,
)


class BigVGAN(nn.Module):
    """Mel ``(B, num_mels, T)`` -> waveform ``(B, 1, T * hop_length)`` in [-1, 1]."""

    def __init__(self, cfg: BigVGANConfig) -> None:
        super().__init__()
        if cfg.resblock not in ("1", "2"):
            raise ValueError(f"unknown BigVGAN resblock type {cfg.resblock!r}")
        self.cfg = cfg
        block_cls = AMPBlock1 if cfg.resblock == "1" else AMPBlock2
        c0 = cfg.upsample_initial_channel
        self.conv_pre = nn.Conv1d(cfg.num_mels, c0, 7, padding=3)
        # each stage is wrapped in its own list, as in the checkpoints (``ups.<i>.0``)
        self.ups = nn.ModuleList(
            nn.ModuleList([nn.ConvTranspose1d(c0 // 2**i, c0 // 2 ** (i + 1), k, u, padding=(k - u) // 2)])
            for i, (u, k) in enumerate(zip(cfg.upsample_rates, cfg.upsample_kernel_sizes, strict=True))
        )
        self.resblocks = nn.ModuleList(
            block_cls(c0 // 2 ** (i + 1), k, tuple(d), cfg.activation, cfg.snake_logscale)
            for i in range(len(self.ups))
            for k, d in zip(cfg.resblock_kernel_sizes, cfg.resblock_dilation_sizes, strict=True)
        )
        ch = c0 // 2 ** len(self.ups)
        self.activation_post = make_activation(cfg.activation, ch, cfg.snake_logscale)
        self.conv_post = nn.Conv1d(ch, 1, 7, padding=3, bias=cfg.use_bias_at_final)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        kernels = len(self.cfg.resblock_kernel_sizes)
        x = self.conv_pre(mel)
        for i, up in enumerate(self.ups):
            x = up[0](x)
            blocks = self.resblocks[i * kernels : (i + 1) * kernels]
            xs = blocks[0](x)
            for block in blocks[1:]:
                xs += block(x)
            x = xs / kernels
        x = self.conv_post(self.activation_post(x))
        return torch.tanh(x) if self.cfg.use_tanh_at_final else x.clamp(-1.0, 1.0)


_WN_FORMS = (
    ("weight_g", "weight_v"),
    ("parametrizations.weight.original0", "parametrizations.weight.original1"),
)


def fold_weight_norm(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Replace every weight-norm pair ``(g, v)`` by the effective ``weight`` (norm over all dims but 0).

    Accepts both the classic ``weight_g``/``weight_v`` names and the
    parametrisation names; plain ``weight`` entries pass through.
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        for g_name, v_name in _WN_FORMS:
            if key.endswith("." + g_name):
                prefix = key[: -len(g_name)]
                v = state_dict.get(prefix + v_name)
                if v is None:
                    raise KeyError(f"{key} has no matching {prefix + v_name}")
                # the same kernel torch's weight-norm uses, so results match it bit for bit
                out[prefix + "weight"] = torch._weight_norm(v, value, 0)
                break
            if key.endswith("." + v_name):
                if state_dict.get(key[: -len(v_name)] + g_name) is None:
                    raise KeyError(f"{key} has no matching {key[: -len(v_name)] + g_name}")
                break
        else:
            out[key] = value
    return out


def bigvgan_from_state(state: dict[str, torch.Tensor], cfg: BigVGANConfig, source: str) -> BigVGAN:
    """Build the vocoder for ``cfg`` from a generator state dict, strictly (weight norm folded)."""
    try:
        state = fold_weight_norm(state)
    except KeyError as exc:
        raise WeightsError(f"{source}: broken weight-norm pair: {exc.args[0]}") from exc
    model = BigVGAN(cfg)
    load_state_into(model, state, source, f"the {cfg.sampling_rate} Hz BigVGAN vocoder")
    return model.eval().requires_grad_(False)


def load_bigvgan(path: Path, cfg: BigVGANConfig) -> BigVGAN:
    """Load ``best_netG.pt`` / ``bigvgan_generator.pt`` (``{"generator": state_dict}``) for ``cfg``."""
    state = read_state_dict(path, "BigVGAN vocoder", unwrap=("generator",))
    return bigvgan_from_state(state, cfg, str(path))
