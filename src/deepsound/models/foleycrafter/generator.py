"""Step 1 with FoleyCrafter: the official inference, equal to it, from a video's frames to 16 kHz audio.

For the same weights, frames, prompts and seed this gives the official ``inference.py`` output:
150 frames → timestamp detector → onset map (ControlNet condition) and CLIP image embedding
(IP-Adapter tokens) → 25 PNDM steps of Auffusion's UNet with both adapters → VAE → spectrogram
image → HiFi-GAN → 16 kHz, cut to the clip. What differs, and why:

* no hard-coded ``cuda``: everything runs where the generator was placed (CPU or CUDA), the noise
  generator too, as the official does on its own device;
* videos longer than the 10 s canvas (plus a little slack) are made in equal windows of at most
  10 s and joined, instead of squeezing the onset map and cutting the audio at 10 s; up to the
  slack the official single pass is kept, squeeze and cut included, so its numbers stand;
* a still image or no video: the image tokens come from the picture (or are zero) and the onset
  map is empty (all -1), as for a clip where nothing happens;
* frames are decoded once per clip and the encoders' results kept, so the paper's ``neg``
  fallback (the same clip, another negative prompt) only samples again;
* guidance is the settings' ``guidance_scale`` (the official 7.5), not the request's
  ``cfg_strength``, whose default is MMAudio's 4.5; the evidence records the value used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from deepsound.audio import Audio
from deepsound.errors import ConfigError
from deepsound.interfaces import Generation, GenerationRequest
from deepsound.media.kinds import IMAGE_SUFFIXES
from deepsound.models.foleycrafter import frames as frame_io
from deepsound.models.foleycrafter.detector import onset_condition
from deepsound.models.foleycrafter.sampler import (
    DiffusionParts,
    encode_text,
    initial_latents,
    sample_spectrogram,
)
from deepsound.models.foleycrafter.semantic import averaged_image_embedding, guided_image_embeds
from deepsound.models.foleycrafter.settings import SAMPLE_RATE, FoleyCrafterSettings
from deepsound.models.foleycrafter.vocoder import denormalize_spectrogram, pcm16
from deepsound.models.stage_timer import StageTimer

if TYPE_CHECKING:
    from torch import nn

    from deepsound.interfaces import Placement
    from deepsound.models.foleycrafter.layout import Files

STAGES = (
    "video decode",
    "detector",
    "image encoder",
    "text",
    "sampling",
    "vocoder",
)  # sampling includes the VAE


@dataclass
class Visual:
    """What the encoders made of one window of a clip: onset probabilities and the image embedding."""

    key: tuple
    probabilities: torch.Tensor | None  # (frames,) on the CPU; None: no motion (an image, no video)
    embedding: torch.Tensor | None  # (1, dim); None: no picture


def windows(duration: float, settings: FoleyCrafterSettings) -> list[tuple[float, float]]:
    """``(start, length)`` of each window: one up to ``window + window_slack`` seconds, else equal ones."""
    if duration <= settings.window + settings.window_slack:
        return [(0.0, duration)]
    n = math.ceil(duration / settings.window)
    return [(k * duration / n, duration / n) for k in range(n)]


class FoleyCrafterGenerator:
    """The :class:`~deepsound.interfaces.Generator` of step 1 with FoleyCrafter."""

    name = "foleycrafter"
    sample_rate = SAMPLE_RATE

    def __init__(
        self,
        parts: DiffusionParts,
        image_encoder: nn.Module,
        detector: nn.Module,
        vocoder: nn.Module,
        settings: FoleyCrafterSettings | None = None,
        *,
        device: torch.device | str = "cpu",
        dtype: torch.dtype | str = torch.float32,
    ) -> None:
        from deepsound.weights.loading import torch_dtype

        self.settings = settings or FoleyCrafterSettings()
        self.device = torch.device(device)
        self.dtype = torch_dtype(dtype)
        for module in parts.modules().values():
            module.to(self.device, self.dtype).eval().requires_grad_(False)
        self.parts = parts
        self.image_encoder = image_encoder.to(self.device, self.dtype).eval().requires_grad_(False)
        # the detector and the vocoder are small; they stay in float32 as the official runs them
        self.detector = detector.to(self.device).eval().requires_grad_(False)
        self.vocoder = vocoder.to(self.device).eval().requires_grad_(False)
        self._visual: dict[tuple, Visual] = {}
        self._text: dict[str, torch.Tensor] = {}
        self.timings: dict[str, float] = {}
        self.sync_timings = False

    # ------------------------------------------------------------ construction

    @classmethod
    def from_files(
        cls,
        files: Files,
        settings: FoleyCrafterSettings | None = None,
        *,
        device: str = "cpu",
        dtype: torch.dtype | str = torch.float32,
    ) -> FoleyCrafterGenerator:
        """Load every part strictly from ``files`` (see :mod:`.layout` for the rules)."""
        from deepsound.models.foleycrafter import layout
        from deepsound.models.foleycrafter.semantic import install_semantic_adapter

        settings = settings or FoleyCrafterSettings()
        unet = layout.load_unet(files.auffusion)
        controlnet = layout.load_temporal_adapter(unet, files.temporal_adapter)
        tables = layout.read_semantic_adapter(files.semantic_adapter)
        install_semantic_adapter(unet, tables, settings.semantic_scale, str(files.semantic_adapter))
        text_encoder, tokenizer = layout.load_text_encoder(files.auffusion)
        parts = DiffusionParts(
            unet=unet,
            controlnet=controlnet,
            vae=layout.load_vae(files.auffusion),
            text_encoder=text_encoder,
            tokenizer=tokenizer,
            scheduler=layout.load_scheduler(files.auffusion),
        )
        return cls(
            parts,
            layout.load_image_encoder(files.image_encoder, files.image_encoder_config),
            layout.load_detector(files.detector, batch_statistics=settings.detector_batch_statistics),
            layout.load_vocoder(files.vocoder, files.vocoder_config),
            settings,
            device=device,
            dtype=dtype,
        )

    @classmethod
    def from_settings(cls, settings: FoleyCrafterSettings, placement: Placement) -> FoleyCrafterGenerator:
        """Resolve the published files (or ``--weights NAME=PATH`` overrides) and load them once.

        An ``auto`` precision is float32 on every device: the precision the official inference runs in.
        """
        from deepsound.models.foleycrafter.weights import files_for_placement

        files = files_for_placement(placement)
        dtype = placement.resolved_dtype(on_cuda="float32")
        return cls.from_files(files, settings, device=placement.resolved_device(), dtype=dtype)

    # ------------------------------------------------------------ generation

    def generate(self, request: GenerationRequest) -> Generation:
        """The audio and its evidence: windows, onsets found, each stage's seconds."""
        wave = self.generate_waveform(request)
        audio = Audio(wave.float().cpu().numpy().astype(np.float32), SAMPLE_RATE)
        evidence: dict[str, Any] = {
            "model": "foleycrafter",
            "seed": request.seed,
            "steps": request.num_steps,
            "semantic_scale": self.settings.semantic_scale,
            "temporal_scale": self.settings.temporal_scale,
            "guidance_scale": self.settings.guidance_scale,
            "windows": [[round(s, 3), round(n, 3)] for s, n in self._last_windows],
            "onset_frames": self._last_onsets,
            "stage_seconds": {k: round(float(v), 4) for k, v in self.timings.items()},
        }
        return Generation(audio, evidence)

    @torch.inference_mode()
    def generate_waveform(self, request: GenerationRequest) -> torch.Tensor:
        """``(samples,)`` float waveform in [-1, 1), 16-bit values as the official writes them."""
        if not request.duration > 0:
            raise ConfigError(f"duration must be positive, got {request.duration}")
        self.timings = dict.fromkeys(STAGES, 0.0)
        generator = torch.Generator(device=self.device).manual_seed(int(request.seed))
        pieces, self._last_windows, self._last_onsets = [], [], []
        spans = windows(float(request.duration), self.settings)
        for start, length in spans:
            visual = self._visual_for(request.video, float(request.start) + start, length)
            pieces.append(self._window(visual, request, length, generator))
            self._last_windows.append((start, length))
        wave = torch.cat(pieces)
        if len(spans) > 1:  # whole windows may round a sample short of the clip
            total = int(round(float(request.duration) * SAMPLE_RATE))
            wave = torch.nn.functional.pad(wave, (0, max(0, total - wave.shape[0])))[:total]
        return wave

    @torch.inference_mode()
    def generate_from_frames(
        self, frames: np.ndarray, request: GenerationRequest
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """One window from decoded ``(N, H, W, 3)`` uint8 frames; returns the waveform and the
        intermediate results (onset probabilities, condition, latents, spectrogram) for checks."""
        self.timings = dict.fromkeys(STAGES, 0.0)
        self._last_onsets = []
        visual = self._encode(("frames", id(frames)), frames, motion=True)
        generator = torch.Generator(device=self.device).manual_seed(int(request.seed))
        record: dict[str, torch.Tensor] = {}
        wave = self._window(visual, request, float(request.duration), generator, record)
        return wave, record

    def _window(
        self,
        visual: Visual,
        request: GenerationRequest,
        length: float,
        generator: torch.Generator,
        record: dict[str, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        s = self.settings
        if visual.probabilities is not None:
            condition = onset_condition(
                visual.probabilities, length, width=s.width, height=s.height, seconds=s.canvas_seconds
            )
            self._last_onsets.append(int((visual.probabilities >= 0.5).sum()))
        else:
            condition = torch.full((1, 1, s.height, s.width), -1.0)
        dim = self.image_encoder.config.projection_dim
        embedding = (
            visual.embedding if visual.embedding is not None else torch.zeros(1, dim, device=self.device)
        )
        with self._stage("text"):
            text, negative = self._encode_text(request.prompt), self._encode_text(request.negative_prompt)
        with self._stage("sampling"):
            latents = initial_latents(self.parts, s.height, s.width, generator, self.device, self.dtype)
            latents, image = sample_spectrogram(
                self.parts,
                text=text,
                negative=negative,
                image_embeds=guided_image_embeds(embedding),
                condition=condition,
                latents=latents,
                steps=int(request.num_steps),
                guidance_scale=s.guidance_scale,
                temporal_scale=s.temporal_scale,
            )
        with self._stage("vocoder"):
            log_mel = denormalize_spectrogram(image.float())
            wave = self.vocoder(log_mel.unsqueeze(0))[0]
            keep = min(int(s.canvas_seconds * SAMPLE_RATE), int(length * SAMPLE_RATE))
            wave = pcm16(wave[:keep])
        if record is not None:
            record.update(condition=condition, latents=latents.float(), spectrogram=log_mel)
            if visual.probabilities is not None:
                record["probabilities"] = visual.probabilities
        return wave

    # ------------------------------------------------------------ conditions

    def _visual_for(self, video: Path | str | None, start: float, length: float) -> Visual:
        if video is None:
            return Visual(("none",), None, None)
        path = Path(video)
        stat = path.stat() if path.exists() else None
        if stat is None:
            from deepsound.errors import MediaError

            raise MediaError(f"{path}: file not found")
        is_image = path.suffix.lower() in IMAGE_SUFFIXES
        key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size, None if is_image else (start, length))
        if key in self._visual:
            return self._visual[key]
        if any(k[:3] != key[:3] for k in self._visual):
            self._visual.clear()  # another clip: keep one clip's windows at most
        with self._stage("video decode"):
            if is_image:
                frames = _image_frames(path)
            else:
                frames = frame_io.read_frames(path, self.settings.frames, start, start + length)
        visual = self._encode(key, frames, motion=not is_image)
        self._visual[key] = visual
        return visual

    def _encode(self, key: tuple, frames: np.ndarray, *, motion: bool) -> Visual:
        probabilities = None
        if motion:
            with self._stage("detector"):
                logits = self.detector(frame_io.detector_input(frames).to(self.device))
                probabilities = torch.sigmoid(logits.float())[0].cpu()
        with self._stage("image encoder"):
            pixels = frame_io.clip_input(frames).to(self.device, self.dtype)
            embedding = averaged_image_embedding(self.image_encoder, pixels, self.settings.image_batch)
        return Visual(key, probabilities, embedding)

    def _encode_text(self, text: str) -> torch.Tensor:
        if text not in self._text:
            if len(self._text) >= 16:
                self._text.pop(next(iter(self._text)))
            self._text[text] = encode_text(self.parts, text)
        return self._text[text]

    def clear_cache(self) -> None:
        self._visual.clear()
        self._text.clear()

    def describe(self) -> dict[str, Any]:
        return {
            "model": "foleycrafter",
            "device": str(self.device),
            "dtype": str(self.dtype).removeprefix("torch."),
        }

    # ------------------------------------------------------------ timing

    def _stage(self, name: str) -> StageTimer:
        return StageTimer(self, name)


def _image_frames(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    from deepsound.errors import MediaError

    try:
        with Image.open(path) as image:
            return np.array(image.convert("RGB"))[None]
    except (OSError, UnidentifiedImageError) as exc:
        raise MediaError(f"{path}: cannot read the image ({exc})") from None
