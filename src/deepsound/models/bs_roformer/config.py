"""BS-RoFormer settings: the model's shape and how a long track is cut into chunks.

The published vocal model (viperx, SDR 12.9755) comes with a YAML file in the
Music-Source-Separation-Training format. We read that file when it is at hand
and otherwise fall back to a built-in copy of its numbers, so that the model
can be built (and its checkpoint checked) without the file.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from deepsound.errors import ConfigError

# 62 bands over the 1025 bins of a 2048-point STFT: fine at low frequencies, coarse at the top.
VIPERX_FREQS_PER_BANDS: tuple[int, ...] = (
    (2,) * 24 + (4,) * 12 + (12,) * 8 + (24,) * 8 + (48,) * 8 + (128, 129)
)


@dataclass(frozen=True)
class BsRoformerConfig:
    """Model hyper-parameters plus the inference settings that change the output.

    Only the fields that the published checkpoints use are modelled; training-only
    settings (losses, learning rate) are ignored when read from YAML.
    """

    dim: int = 512
    depth: int = 12
    stereo: bool = True
    num_stems: int = 1
    time_transformer_depth: int = 1
    freq_transformer_depth: int = 1
    freqs_per_bands: tuple[int, ...] = VIPERX_FREQS_PER_BANDS
    dim_head: int = 64
    heads: int = 8
    stft_n_fft: int = 2048
    stft_hop_length: int = 441
    stft_win_length: int = 2048
    stft_normalized: bool = False
    mask_estimator_depth: int = 2
    mlp_expansion_factor: int = 4
    # Newer releases of the training code zero the DC bin of the masked spectrum; the checkpoint
    # was trained, and the paper's pipeline runs it, without that step.
    zero_dc: bool = False
    # audio / inference
    sample_rate: int = 44100
    chunk_size: int = 352800
    num_overlap: int = 2
    batch_size: int = 4
    instruments: tuple[str, ...] = ("vocals",)
    normalize: bool = False
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        freqs = self.stft_n_fft // 2 + 1
        if sum(self.freqs_per_bands) != freqs:
            raise ConfigError(
                f"bands cover {sum(self.freqs_per_bands)} STFT bins, but n_fft {self.stft_n_fft} gives {freqs}"
            )
        if len(self.freqs_per_bands) < 2:
            raise ConfigError("BS-RoFormer needs at least two frequency bands")
        if self.num_overlap < 1 or self.chunk_size < self.num_overlap:
            raise ConfigError(f"bad chunking: chunk_size {self.chunk_size}, num_overlap {self.num_overlap}")
        if len(self.instruments) != self.num_stems:
            raise ConfigError(f"{self.num_stems} stem(s) but instruments {list(self.instruments)}")

    @property
    def audio_channels(self) -> int:
        return 2 if self.stereo else 1

    def replace(self, **changes: Any) -> BsRoformerConfig:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("extra")
        data["freqs_per_bands"] = list(self.freqs_per_bands)
        data["instruments"] = list(self.instruments)
        return data

    @classmethod
    def viperx(cls) -> BsRoformerConfig:
        """The numbers of ``configs/viperx/model_bs_roformer_ep_317_sdr_12.9755.yaml``."""
        return cls()

    @classmethod
    def tiny(cls, **changes: Any) -> BsRoformerConfig:
        """Same architecture at toy size: a coarse STFT, few bands, one layer, short chunks."""
        base = cls(
            dim=32,
            depth=1,
            freqs_per_bands=(2, 2, 4, 9),  # n_fft 32 -> 17 bins
            dim_head=8,
            heads=2,
            stft_n_fft=32,
            stft_hop_length=8,
            stft_win_length=32,
            chunk_size=800,
            batch_size=2,
        )
        return base.replace(**changes)

    @classmethod
    def from_yaml(cls, path: Path) -> BsRoformerConfig:
        """Read a Music-Source-Separation-Training YAML file (its ``!!python/tuple`` tags included)."""
        path = Path(path)
        try:
            data = yaml.load(path.read_text(encoding="utf-8"), Loader=_TupleLoader)  # noqa: S506
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read BS-RoFormer config ({exc.strerror})") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
        if not isinstance(data, dict) or not isinstance(data.get("model"), dict):
            raise ConfigError(f"{path}: no 'model' section; not a BS-RoFormer config")
        return cls.from_mapping(data, source=str(path))

    @classmethod
    def from_mapping(cls, data: dict[str, Any], source: str = "config") -> BsRoformerConfig:
        model = dict(data.get("model") or {})
        audio = dict(data.get("audio") or {})
        inference = dict(data.get("inference") or {})
        training = dict(data.get("training") or {})
        if int(model.get("linear_transformer_depth", 0) or 0) != 0:
            raise ConfigError(f"{source}: linear_transformer_depth > 0 is not supported")
        if model.get("use_pope") or model.get("skip_connection"):
            raise ConfigError(f"{source}: PoPE / skip-connection variants are not supported")
        defaults = cls()
        known = {
            "dim", "depth", "stereo", "num_stems", "time_transformer_depth", "freq_transformer_depth",
            "dim_head", "heads", "stft_n_fft", "stft_hop_length", "stft_win_length", "stft_normalized",
            "mask_estimator_depth", "mlp_expansion_factor", "zero_dc",
        }  # fmt: skip
        values: dict[str, Any] = {k: model[k] for k in known if k in model}
        if "freqs_per_bands" in model:
            values["freqs_per_bands"] = tuple(int(f) for f in model["freqs_per_bands"])
        values["sample_rate"] = int(audio.get("sample_rate", defaults.sample_rate))
        values["chunk_size"] = int(inference.get("chunk_size", audio.get("chunk_size", defaults.chunk_size)))
        values["num_overlap"] = int(inference.get("num_overlap", defaults.num_overlap))
        values["batch_size"] = int(inference.get("batch_size", defaults.batch_size))
        values["normalize"] = bool(inference.get("normalize", False))
        target = training.get("target_instrument")
        instruments = [target] if target else list(training.get("instruments") or defaults.instruments)
        values["instruments"] = tuple(instruments)
        values["num_stems"] = int(model.get("num_stems", len(instruments)))
        if values["num_stems"] != len(instruments):
            # multi-stem models list every stem; a one-stem model names its target
            values["instruments"] = tuple(instruments[: values["num_stems"]])
        return cls(**values)


class _TupleLoader(yaml.SafeLoader):
    """Safe YAML loading plus the one Python tag these config files use."""


_TupleLoader.add_constructor(
    "tag:yaml.org,2002:python/tuple", lambda loader, node: tuple(loader.construct_sequence(node))
)
