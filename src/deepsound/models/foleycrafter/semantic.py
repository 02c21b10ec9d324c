"""The semantic adapter: IP-Adapter image tokens from the video's frames, attended in every UNet
cross-attention beside the text.

diffusers holds the whole mechanism (``IPAdapterAttnProcessor2_0``, ``ImageProjection``, the
UNet's ``_load_ip_adapter_weights``), with the processor order and ``{1, 3, 5…}`` numbering of the
published IP-Adapter files, so it is used as it is. What is added here is the accounting a strict
load needs (every key of the file consumed, none missing) and the official input: the
projected CLIP image embeddings of all sampled frames, averaged into one, with a zero embedding
as the unconditional branch.
"""

from __future__ import annotations

import torch
from torch import nn

from deepsound.errors import WeightsError
from deepsound.weights.loading import StateDict, describe_mismatch

IMAGE_TOKENS = 4  # the plain IP-Adapter: four tokens from one global image embedding


def cross_attention_names(unet: nn.Module) -> list[str]:
    """The UNet's cross-attention processors, in the order the published file numbers them."""
    return [name for name in unet.attn_processors if not name.endswith("attn1.processor")]


def expected_keys(unet: nn.Module, clip_dim: int) -> dict[str, tuple[int, ...]]:
    """Every key (and shape) ``semantic_adapter.bin`` must hold for ``unet``."""
    cfg = unet.config
    cross = cfg.cross_attention_dim
    keys: dict[str, tuple[int, ...]] = {
        "image_proj.proj.weight": (IMAGE_TOKENS * cross, clip_dim),
        "image_proj.proj.bias": (IMAGE_TOKENS * cross,),
        "image_proj.norm.weight": (cross,),
        "image_proj.norm.bias": (cross,),
    }
    for i, name in enumerate(cross_attention_names(unet)):
        hidden = _hidden_size(cfg, name)
        for kind in ("to_k_ip", "to_v_ip"):
            keys[f"ip_adapter.{2 * i + 1}.{kind}.weight"] = (hidden, cross)
    return keys


def _hidden_size(cfg: object, name: str) -> int:
    channels = list(cfg.block_out_channels)  # type: ignore[attr-defined]
    if name.startswith("mid_block"):
        return channels[-1]
    block = int(name.split(".")[1])
    return list(reversed(channels))[block] if name.startswith("up_blocks") else channels[block]


def install_semantic_adapter(
    unet: nn.Module, tables: dict[str, StateDict], scale: float, source: str
) -> None:
    """Load the adapter into ``unet`` (its cross-attentions and image projection) at ``scale``."""
    proj = tables.get("image_proj", {}).get("proj.weight")
    if proj is None:
        raise WeightsError(f"{source}: no image_proj.proj.weight (not a plain IP-Adapter file)")
    flat = {f"{part}.{k}": v for part, table in tables.items() for k, v in table.items()}
    expected = {
        k: torch.empty(shape, device="meta") for k, shape in expected_keys(unet, proj.shape[1]).items()
    }
    problem = describe_mismatch(expected, flat)
    if problem:
        raise WeightsError(f"{source}: does not fit the semantic adapter ({problem})")
    unet._load_ip_adapter_weights([tables], low_cpu_mem_usage=False)
    set_semantic_scale(unet, scale)


def set_semantic_scale(unet: nn.Module, scale: float) -> None:
    for processor in unet.attn_processors.values():
        if hasattr(processor, "to_k_ip"):
            processor.scale = [scale]


def averaged_image_embedding(
    encoder: nn.Module, pixel_values: torch.Tensor, batch_size: int = 32
) -> torch.Tensor:
    """``(frames, 3, 224, 224)`` → ``(1, dim)``: the projected embeddings averaged over frames."""
    embeds = [encoder(pixel_values=chunk).image_embeds for chunk in pixel_values.split(batch_size)]
    return torch.cat(embeds).mean(dim=0, keepdim=True)


def guided_image_embeds(embedding: torch.Tensor) -> list[torch.Tensor]:
    """The UNet's ``image_embeds`` for a guided batch: ``[(2, 1, dim)]``, zeros first."""
    one = embedding.reshape(1, 1, -1)
    return [torch.cat([torch.zeros_like(one), one])]
