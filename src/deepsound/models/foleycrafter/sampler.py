"""The denoising recipe of FoleyCrafter's ControlNet pipeline, for one spectrogram.

Numbered like the official ``__call__`` it equals (diffusers' ControlNet pipeline with the
IP-Adapter image tokens): 1. text embeddings of the negative and the positive prompt in one batch,
2. the control map twice, 3. PNDM timesteps, 4. noise from the seeded generator on the working
device, 5. per step: ControlNet (text only, scaled by the temporal scale), the UNet with the
ControlNet residuals and the image tokens, guidance, a scheduler step, 6. VAE decoding to the
spectrogram image in [0, 1]. The guided pair always runs as one batch of two, as the official
does, so the result is the same on the CPU and on a GPU up to the device's own rounding.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


@dataclass
class DiffusionParts:
    """The diffusion-side modules of one FoleyCrafter installation."""

    unet: nn.Module
    controlnet: nn.Module
    vae: nn.Module
    text_encoder: nn.Module
    tokenizer: Any
    scheduler: Any

    def modules(self) -> dict[str, nn.Module]:
        return {"unet": self.unet, "controlnet": self.controlnet, "vae": self.vae, "text": self.text_encoder}


def encode_text(parts: DiffusionParts, text: str) -> torch.Tensor:
    """``(1, 77, dim)`` CLIP text states, padded to the tokenizer's length as the pipeline pads them."""
    tok = parts.tokenizer
    ids = tok(
        [text], padding="max_length", max_length=tok.model_max_length, truncation=True, return_tensors="pt"
    )
    device = next(parts.text_encoder.parameters()).device
    return parts.text_encoder(ids.input_ids.to(device), attention_mask=None)[0]


def initial_latents(
    parts: DiffusionParts,
    height: int,
    width: int,
    generator: torch.Generator,
    device: torch.device,
    dtype: torch.dtype,
) -> torch.Tensor:
    from diffusers.utils.torch_utils import randn_tensor

    factor = 2 ** (len(parts.vae.config.block_out_channels) - 1)
    shape = (1, parts.unet.config.in_channels, height // factor, width // factor)
    latents = randn_tensor(shape, generator=generator, device=device, dtype=dtype)
    return latents * parts.scheduler.init_noise_sigma


@torch.inference_mode()
def sample_spectrogram(
    parts: DiffusionParts,
    *,
    text: torch.Tensor,
    negative: torch.Tensor,
    image_embeds: list[torch.Tensor],
    condition: torch.Tensor,
    latents: torch.Tensor,
    steps: int,
    guidance_scale: float,
    temporal_scale: float,
    on_step: Callable[[int, int], None] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The final latents and the ``(3, H, W)`` spectrogram image in [0, 1]."""
    dtype = latents.dtype
    # 1-2. the guided batch: negative first, as the official concatenates it
    prompt = torch.cat([negative, text]).to(dtype)
    control = torch.cat([condition] * 2).to(latents.device, dtype)
    embeds = [e.to(latents.device, dtype) for e in image_embeds]
    # 3. timesteps
    scheduler = parts.scheduler
    scheduler.set_timesteps(steps, device=latents.device)
    # 5. denoising
    for i, t in enumerate(scheduler.timesteps):
        model_in = scheduler.scale_model_input(torch.cat([latents] * 2), t)
        down, mid = parts.controlnet(
            model_in,
            t,
            encoder_hidden_states=prompt,
            controlnet_cond=control,
            conditioning_scale=temporal_scale,
            guess_mode=False,
            return_dict=False,
        )
        noise = parts.unet(
            model_in,
            t,
            encoder_hidden_states=prompt,
            down_block_additional_residuals=down,
            mid_block_additional_residual=mid,
            added_cond_kwargs={"image_embeds": embeds},
            return_dict=False,
        )[0]
        uncond, cond = noise.chunk(2)
        latents = scheduler.step(uncond + guidance_scale * (cond - uncond), t, latents, return_dict=False)[0]
        if on_step is not None:
            on_step(i + 1, len(scheduler.timesteps))
    # 6. the spectrogram image
    image = parts.vae.decode(latents / parts.vae.config.scaling_factor, return_dict=False)[0]
    return latents, (image / 2 + 0.5).clamp(0, 1)[0]
