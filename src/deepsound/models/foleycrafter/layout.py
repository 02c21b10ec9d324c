"""Where FoleyCrafter's published files live and how each becomes a loaded module, strictly.

Three hub repositories hold the model: Auffusion (``auffusion/auffusion-full-no-adapter``: the
UNet, VAE, CLIP text encoder, tokenizer and scheduler, diffusers/transformers folders),
FoleyCrafter (``ymzhang319/FoleyCrafter``: the temporal adapter, the timestamp detector, the
semantic adapter and the vocoder) and IP-Adapter's image encoder (``h94/IP-Adapter``,
``models/image_encoder``). Each module is built from its folder's config and loaded through the
project's one strict loader; every key of every file is used or dropped by a rule written here:

* text and image encoders: ``*.position_ids`` dropped (older transformers saved the buffer; it
  is rebuilt from the config); the text tower's ``text_model.`` prefix taken off where the
  installed transformers (5 and later) has none;
* VAE: attention names of older diffusers saves (``query``/``key``/``value``/``proj_attn``)
  renamed to today's (``to_q``/``to_k``/``to_v``/``to_out.0``);
* temporal adapter and detector: the training wrapper (``state_dict``, ``module.``) taken off;
  tensors of the temporal adapter file that are not ControlNet parameters are left out and
  logged (the official loader is non-strict there; see :func:`load_temporal_adapter`);
* vocoder: ``generator`` unwrapped, weight norm folded;
* semantic adapter: ``image_proj.*`` → the image projection, ``ip_adapter.{1,3,5…}.to_{k,v}_ip``
  → the cross-attention processors in the UNet's own order (diffusers' IP-Adapter loader), and
  nothing else may be in the file.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from deepsound.errors import WeightsError
from deepsound.weights.loading import (
    LoadRules,
    StateDict,
    apply_rules,
    load_state_into,
    read_state_dict,
    unwrap_state_dict,
)

log = logging.getLogger(__name__)

HUB_AUFFUSION = "auffusion/auffusion-full-no-adapter"
HUB_FOLEYCRAFTER = "ymzhang319/FoleyCrafter"
HUB_IMAGE_ENCODER = "h94/IP-Adapter"

CLIP_RULES = LoadRules(unwrap=(), drop=(r"\.position_ids$",))
VAE_RULES = LoadRules(
    unwrap=(),
    rename=(
        (r"(attentions\.\d+)\.query\.", r"\1.to_q."),
        (r"(attentions\.\d+)\.key\.", r"\1.to_k."),
        (r"(attentions\.\d+)\.value\.", r"\1.to_v."),
        (r"(attentions\.\d+)\.proj_attn\.", r"\1.to_out.0."),
    ),
)
DIFFUSERS_RULES = LoadRules(unwrap=())
TRAINING_WRAPPER_RULES = LoadRules(unwrap=("state_dict",), rename=((r"^module\.", ""),))


_DIFFUSERS_WEIGHTS = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")
_TRANSFORMERS_WEIGHTS = ("model.safetensors", "pytorch_model.bin")

# registry names of the published files (deepsound.weights.registry)
AUFFUSION = "auffusion_full_no_adapter"
FILE_NAMES = {
    "temporal_adapter": "foleycrafter_temporal_adapter",
    "detector": "foleycrafter_timestamp_detector",
    "semantic_adapter": "foleycrafter_semantic_adapter",
    "vocoder": "foleycrafter_vocoder",
    "vocoder_config": "foleycrafter_vocoder_config",
    "image_encoder": "ip_adapter_image_encoder",
    "image_encoder_config": "ip_adapter_image_encoder_config",
}


@dataclass(frozen=True)
class Files:
    """Every file one FoleyCrafter installation loads; ``auffusion`` is a diffusers folder."""

    auffusion: Path
    temporal_adapter: Path
    detector: Path
    semantic_adapter: Path
    vocoder: Path
    vocoder_config: Path
    image_encoder: Path
    image_encoder_config: Path

    @classmethod
    def in_folders(cls, auffusion: Path, foleycrafter: Path, image_encoder: Path) -> Files:
        """The hub repositories' own layout (``image_encoder`` is IP-Adapter's ``models/image_encoder``)."""
        fc, enc = Path(foleycrafter), Path(image_encoder)
        return cls(
            auffusion=Path(auffusion),
            temporal_adapter=fc / "temporal_adapter.ckpt",
            detector=fc / "timestamp_detector.pth.tar",
            semantic_adapter=fc / "semantic" / "semantic_adapter.bin",
            vocoder=fc / "vocoder" / "vocoder.pt",
            vocoder_config=fc / "vocoder" / "config.json",
            image_encoder=weights_file(enc, _TRANSFORMERS_WEIGHTS),
            image_encoder_config=enc / "config.json",
        )


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise WeightsError(f"{path}: not found") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise WeightsError(f"{path}: not a readable JSON config ({exc})") from None


def weights_file(folder: Path, names: tuple[str, ...]) -> Path:
    """The first of ``names`` present in ``folder`` (safetensors before pickles, as diffusers looks)."""
    for name in names:
        if (Path(folder) / name).is_file():
            return Path(folder) / name
    raise WeightsError(f"{folder}: none of {', '.join(names)} found")


def read_weights(path: Path, what: str, rules: LoadRules) -> StateDict:
    """A ``.safetensors`` or PyTorch file → rules applied (``weights_only``: a file never runs code)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            state = load_file(str(path))
        except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types
            raise WeightsError(f"{path}: not a readable safetensors file for {what} ({exc})") from None
    else:
        state = _read_mapped(path, what, rules) or read_state_dict(path, what, rules.unwrap)
    return apply_rules(state, rules)


def _read_mapped(path: Path, what: str, rules: LoadRules) -> StateDict | None:
    """A PyTorch zip checkpoint memory-mapped: tensors the rules drop (most of the 4.3 GB temporal
    adapter file) are never read, and kept ones are paged in from the file as they are used.
    ``None`` for files that cannot be mapped (the legacy format); they are read whole."""
    try:
        data = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001 - not mappable (legacy format) or unreadable: the plain reader says which
        return None
    return unwrap_state_dict(data, path, what, rules.unwrap)


def load_module(build: Callable[[], nn.Module], path: Path, what: str, rules: LoadRules) -> nn.Module:
    """Build the module on the meta device and take the file's tensors as its parameters: no random
    initialisation and no second copy of the weights while loading (the official loaders keep one
    too, through accelerate)."""
    with torch.device("meta"):
        module = build()
    return _materialized(load_state_into(module, read_weights(path, what, rules), path, what, assign=True))


def _materialized(module: nn.Module) -> nn.Module:
    """Buffers no file holds (CLIP's ``position_ids``) rebuilt on the CPU after a meta-device load."""
    for name, buffer in list(module.named_buffers()):
        if not buffer.is_meta:
            continue
        owner_name, _, leaf = name.rpartition(".")
        if leaf != "position_ids":
            raise WeightsError(f"{type(module).__name__}: buffer {name} was not loaded")
        owner = module.get_submodule(owner_name)
        owner.register_buffer(
            leaf, torch.arange(buffer.shape[-1]).expand(buffer.shape).clone(), persistent=False
        )
    return module.eval()


def load_unet(folder: Path) -> nn.Module:
    from diffusers import UNet2DConditionModel

    sub = Path(folder) / "unet"
    config = read_json(sub / "config.json")
    path = weights_file(sub, _DIFFUSERS_WEIGHTS)
    return load_module(
        lambda: UNet2DConditionModel.from_config(config), path, "the Auffusion UNet", DIFFUSERS_RULES
    )


def load_vae(folder: Path) -> nn.Module:
    from diffusers import AutoencoderKL

    sub = Path(folder) / "vae"
    config = read_json(sub / "config.json")
    return load_module(
        lambda: AutoencoderKL.from_config(config),
        weights_file(sub, _DIFFUSERS_WEIGHTS),
        "the Auffusion VAE",
        VAE_RULES,
    )


def load_text_encoder(folder: Path) -> tuple[nn.Module, Any]:
    """CLIP text encoder and its tokenizer (transformers' classes, the published names)."""
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    sub = Path(folder) / "text_encoder"
    config = CLIPTextConfig.from_dict(read_json(sub / "config.json"))
    rules = CLIP_RULES
    with torch.device("meta"):
        flat = not any(k.startswith("text_model.") for k in CLIPTextModel(config).state_dict())
    if flat:  # transformers >= 5 has no text_model level
        rules = LoadRules(unwrap=(), rename=((r"^text_model\.", ""),), drop=CLIP_RULES.drop)
    path = weights_file(sub, _TRANSFORMERS_WEIGHTS)
    model = load_module(lambda: CLIPTextModel(config), path, "the CLIP text encoder", rules)
    try:
        tokenizer = CLIPTokenizer.from_pretrained(str(Path(folder) / "tokenizer"))
    except (OSError, ValueError) as exc:
        raise WeightsError(f"{folder}/tokenizer: not a CLIP tokenizer folder ({exc})") from None
    return model, tokenizer


def load_scheduler(folder: Path) -> Any:
    """The official pipeline's scheduler: PNDM with Auffusion's ``scheduler_config.json``."""
    from diffusers import PNDMScheduler

    return PNDMScheduler.from_config(read_json(Path(folder) / "scheduler" / "scheduler_config.json"))


def load_image_encoder(path: Path, config: Path) -> nn.Module:
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    numbers = CLIPVisionConfig.from_dict(read_json(config))
    return load_module(
        lambda: CLIPVisionModelWithProjection(numbers), path, "the IP-Adapter image encoder", CLIP_RULES
    )


def controlnet_for(unet: nn.Module) -> nn.Module:
    """The temporal adapter's shape: a ControlNet copy of the UNet with a one-channel condition."""
    from diffusers import ControlNetModel

    with torch.device("meta"):
        return ControlNetModel.from_unet(unet, conditioning_channels=1, load_weights_from_unet=False)


def load_temporal_adapter(unet: nn.Module, path: Path) -> nn.Module:
    """The ControlNet of ``temporal_adapter.ckpt``: every ControlNet tensor must be there and fit.

    The published file is about three times a ControlNet's size (a plain ``OrderedDict`` of float
    tensors per the hub's pickle scan), and the official loader takes it with ``strict=False``. So
    keys that are not ControlNet parameters are dropped here too -- counted and logged, never
    silently -- while a missing or wrongly shaped ControlNet tensor is an error.
    """
    controlnet = controlnet_for(unet)
    state = read_weights(path, "the temporal adapter", TRAINING_WRAPPER_RULES)
    wanted = controlnet.state_dict().keys()
    extra = sorted(state.keys() - wanted)
    if extra:
        log.warning(
            "%s: %d tensors outside the ControlNet left out, as the official loader leaves them (%s, …)",
            path,
            len(extra),
            ", ".join(extra[:3]),
        )
    state = {k: v for k, v in state.items() if k in wanted}
    loaded = load_state_into(controlnet, state, path, "the temporal adapter (ControlNet)", assign=True)
    return _materialized(loaded)


def load_detector(path: Path, *, batch_statistics: bool = True) -> nn.Module:
    from deepsound.models.foleycrafter.detector import TimestampDetector

    return load_module(
        lambda: TimestampDetector(batch_statistics=batch_statistics),
        path,
        "the timestamp detector",
        TRAINING_WRAPPER_RULES,
    )


def load_vocoder(path: Path, config: Path) -> nn.Module:
    from deepsound.models.foleycrafter.vocoder import HifiGanVocoder, VocoderConfig, fold_weight_norm

    numbers = VocoderConfig.from_dict(read_json(config))
    rules = LoadRules(unwrap=("generator",), transform=fold_weight_norm)
    return load_module(lambda: HifiGanVocoder(numbers), path, "the HiFi-GAN vocoder", rules)


def read_semantic_adapter(path: Path) -> dict[str, StateDict]:
    """``{"image_proj": …, "ip_adapter": …}`` of ``semantic_adapter.bin`` (or the flat safetensors form)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        flat = read_weights(path, "the semantic adapter", LoadRules(unwrap=()))
    else:
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise WeightsError(f"{path}: semantic adapter weights not found") from None
        except Exception as exc:  # noqa: BLE001 - torch raises many types for corrupt files
            raise WeightsError(f"{path}: not a readable semantic adapter ({type(exc).__name__})") from None
        if not isinstance(data, dict):
            raise WeightsError(
                f"{path}: expected image_proj and ip_adapter tables, found {type(data).__name__}"
            )
        flat = {
            f"{part}.{k}": v
            for part, table in data.items()
            if isinstance(table, dict)
            for k, v in table.items()
        }
        other = [k for k, v in data.items() if not isinstance(v, dict)]
        if other:
            raise WeightsError(f"{path}: unexpected entries {other} in the semantic adapter")
    out: dict[str, StateDict] = {"image_proj": {}, "ip_adapter": {}}
    for key, value in flat.items():
        part, _, rest = key.partition(".")
        if part not in out:
            raise WeightsError(f"{path}: unexpected key {key!r} in the semantic adapter")
        out[part][rest] = value
    return out
