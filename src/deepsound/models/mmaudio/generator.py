"""Step 1 of DeepSound: MMAudio video-to-audio generation, equal to the official ``generate``.

For the same weights, video, prompts and seed this produces the waveform of
MMAudio's demo: features from CLIP (8 fps frames and the prompts) and
Synchformer (25 fps), noise from a generator seeded on the target device,
25 guided Euler steps, VAE decoding to a mel spectrogram and BigVGAN.

What differs is only where time goes. Everything is loaded once per process.
Features of the last video (and of recent prompts) are kept, so the paper's
``neg`` fallback, which regenerates the same clip with another negative
prompt, neither decodes nor encodes the video again. On a GPU the two
guidance branches share one batch; on the CPU they run one after the other,
which costs the same there and keeps the output bit-identical to the
reference.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from deepsound.audio import Audio
from deepsound.errors import ConfigError, MediaError
from deepsound.interfaces import Generation, GenerationRequest
from deepsound.media.kinds import IMAGE_SUFFIXES
from deepsound.models.mmaudio.flow import initial_noise, sample_latents
from deepsound.models.mmaudio.network import MMAudioNetwork
from deepsound.models.mmaudio.variants import (
    MIN_DURATION,
    Mode,
    Variant,
    get_variant,
    sequence_config,
)
from deepsound.models.stage_timer import StageTimer

if TYPE_CHECKING:
    from deepsound.interfaces import Placement
    from deepsound.models.mmaudio.clip import ClipConditioner
    from deepsound.models.mmaudio.settings import MMAudioSettings
    from deepsound.models.mmaudio.synchformer import SynchformerEncoder
    from deepsound.models.mmaudio.vae import AudioDecoder

STAGES = ("video decode", "clip", "synchformer", "text", "sampling", "vae", "vocoder")
_TEXT_CACHE_SIZE = 16

# frames (CLIP) or 16-frame windows (Synchformer) per forward pass, as the reference batches them
FRAME_BATCH = 40


@dataclass
class VisualFeatures:
    """Encoded conditions of one video or image, kept to serve regenerations of the same clip."""

    key: tuple
    duration: float | None  # effective duration of a video; None for an image (any duration)
    clip: torch.Tensor  # (1, T, clip_dim)
    sync: torch.Tensor | None  # (1, S*8, sync_dim); None for an image


class MMAudioGenerator:
    """The :class:`~deepsound.interfaces.Generator` of step 1."""

    name = "mmaudio"

    def __init__(
        self,
        network: MMAudioNetwork,
        clip: ClipConditioner,
        synchformer: SynchformerEncoder,
        decoder: AudioDecoder,
        *,
        mode: Mode,
        variant: str = "custom",
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        batched_cfg: bool | None = None,
        compile: bool = False,
    ) -> None:
        self.variant = variant
        self.mode: Mode = mode
        self.device = torch.device(device)
        self.dtype = dtype
        self.network = network.to(self.device, dtype).eval().requires_grad_(False)
        self.clip = clip.to(self.device, dtype).eval()
        self.synchformer = synchformer.to(self.device, dtype).eval()
        self.decoder = decoder.to(self.device, dtype).eval()
        self._check_dims()
        # Batching both guidance branches pays off on a GPU; on the CPU it changes nothing but rounding.
        self.batched_cfg = self.device.type == "cuda" if batched_cfg is None else batched_cfg
        if compile:
            self.network.predict_flow = torch.compile(self.network.predict_flow)  # type: ignore[method-assign]
        self._visual: VisualFeatures | None = None
        self._text: OrderedDict[str, torch.Tensor] = OrderedDict()
        self.timings: dict[str, float] = {}
        self.sync_timings = False  # set to time stages on a GPU (synchronises after each)

    # ------------------------------------------------------------ construction

    @classmethod
    def from_settings(cls, settings: MMAudioSettings, placement: Placement) -> MMAudioGenerator:
        """Resolve every weight file of ``settings.variant`` and load each model once."""
        from deepsound.models.mmaudio.clip import ClipConditioner
        from deepsound.models.mmaudio.synchformer import SynchformerEncoder
        from deepsound.models.mmaudio.vae import AudioDecoder
        from deepsound.weights.loading import torch_dtype
        from deepsound.weights.overrides import resolve_for

        variant: Variant = get_variant(settings.variant)
        device, dtype = placement.resolved_device(), torch_dtype(placement.resolved_dtype())
        network = MMAudioNetwork(variant.network)
        network.load_checkpoint(resolve_for(placement, variant.weights_name))
        return cls(
            network,
            ClipConditioner.from_placement(placement),
            SynchformerEncoder.from_placement(placement),
            AudioDecoder.from_placement(placement, variant.mode),
            mode=variant.mode,
            variant=variant.name,
            device=device,
            dtype=dtype,
            batched_cfg=settings.batched_cfg,
            compile=settings.compile,
        )

    def _check_dims(self) -> None:
        spec = self.network.spec
        found = {
            "CLIP image": (self.clip.image_dim, spec.clip_dim),
            "CLIP text": (self.clip.text_dim, spec.text_dim),
            "Synchformer": (self.synchformer.feature_dim, spec.sync_dim),
            "VAE latent": (self.decoder.latent_dim, spec.latent_dim),
        }
        wrong = [f"{k} {a} != {b}" for k, (a, b) in found.items() if a != b]
        if wrong:
            raise ConfigError("MMAudio parts do not fit the network: " + ", ".join(wrong))
        if self.decoder.sample_rate != sequence_config(self.mode).sampling_rate:
            raise ConfigError(
                f"the {self.mode} network needs a {sequence_config(self.mode).sampling_rate} Hz decoder, "
                f"got {self.decoder.sample_rate} Hz"
            )

    @property
    def sample_rate(self) -> int:
        return sequence_config(self.mode).sampling_rate

    # ------------------------------------------------------------ generation

    def generate(self, request: GenerationRequest) -> Generation:
        """The audio and its evidence: each stage's seconds (decode, CLIP, Synchformer, sampling, …)."""
        wave = self.generate_waveform(request)
        audio = Audio(wave.float().cpu().numpy().astype(np.float32), self.sample_rate)
        stages = {k: round(float(v), 4) for k, v in self.timings.items()}
        return Generation(audio, {"variant": self.variant, "seed": request.seed, "stage_seconds": stages})

    @torch.inference_mode()
    def generate_waveform(self, request: GenerationRequest) -> torch.Tensor:
        """``(1, samples)`` waveform on the working device, as the official ``generate`` returns it.

        The length is a whole number of latents, so slightly more than the
        (effective) duration, exactly like the reference output.
        """
        if not request.duration > 0:
            raise ConfigError(f"duration must be positive, got {request.duration}")
        self.timings = dict.fromkeys(STAGES, 0.0)
        visual = self._visual_features(request.video, float(request.duration), float(request.start))
        return self._synthesize(visual, request)

    @torch.inference_mode()
    def generate_from_frames(
        self,
        request: GenerationRequest,
        clip_frames: torch.Tensor | None,
        sync_frames: torch.Tensor | None,
        *,
        image_input: bool = False,
    ) -> torch.Tensor:
        """Generate from already decoded frames (``(T, 3, 384, 384)`` in [0, 1] and
        ``(T, 3, 224, 224)`` in [-1, 1]); ``request.video`` is ignored and ``request.duration``
        is taken as the frames' duration. ``image_input`` uses one CLIP frame and no motion."""
        self.timings = dict.fromkeys(STAGES, 0.0)
        visual = None
        if clip_frames is not None:
            key = ("frames", id(clip_frames))
            clip = self._encode_clip(clip_frames)
            if image_input:
                visual = VisualFeatures(key, None, clip, None)
            else:
                if sync_frames is None:
                    raise ValueError("a video needs sync frames as well as CLIP frames")
                visual = VisualFeatures(key, float(request.duration), clip, self._encode_sync(sync_frames))
        return self._synthesize(visual, request)

    def _synthesize(self, visual: VisualFeatures | None, request: GenerationRequest) -> torch.Tensor:
        duration = visual.duration if visual is not None and visual.duration is not None else request.duration
        seq = sequence_config(self.mode, duration)
        n_lat, n_clip, n_sync = seq.latent_seq_len, seq.clip_seq_len, seq.sync_seq_len
        if n_sync <= 0 or n_clip <= 0:
            raise ConfigError(
                f"MMAudio needs at least {MIN_DURATION} s (one 16-frame Synchformer window), got {duration:.3f} s"
            )
        net = self.network

        if visual is None:
            clip_f, sync_f = net.empty_clip(1, n_clip), net.empty_sync(1, n_sync)
        elif visual.sync is None:  # an image: one picture stands for every frame, no motion
            clip_f, sync_f = visual.clip.expand(-1, n_clip, -1), net.empty_sync(1, n_sync)
        else:
            clip_f, sync_f = visual.clip, visual.sync
            if clip_f.shape[1] != n_clip or sync_f.shape[1] != n_sync:
                raise MediaError(
                    f"{request.video}: {clip_f.shape[1]} CLIP / {sync_f.shape[1]} sync tokens for "
                    f"{duration:.3f} s, expected {n_clip} / {n_sync}"
                )

        with self._stage("text"):
            text_f = self._encode_text(request.prompt)
            negative_f = self._encode_text(request.negative_prompt)

        with self._stage("sampling"):
            x0 = initial_noise(1, n_lat, net.latent_dim, request.seed, self.device, self.dtype)
            conditions = net.preprocess_conditions(clip_f, sync_f, text_f, n_lat)
            empty = net.empty_conditions(1, n_clip, n_sync, n_lat, negative_f)
            latents = sample_latents(
                net,
                conditions,
                empty,
                x0,
                num_steps=request.num_steps,
                cfg_strength=request.cfg_strength,
                batched_cfg=self.batched_cfg,
            )
        with self._stage("vae"):
            mel = self.decoder.decode(latents)
        with self._stage("vocoder"):
            wave = self.decoder.vocode(mel)
        return wave

    # ------------------------------------------------------------ conditions

    def _visual_features(
        self, path: Path | str | None, duration: float, start: float = 0.0
    ) -> VisualFeatures | None:
        if path is None:
            return None
        path = Path(path)
        try:
            stat = path.stat()
        except OSError:
            raise MediaError(f"{path}: file not found") from None
        is_image = path.suffix.lower() in IMAGE_SUFFIXES
        # an image serves any duration; a video's features depend on the window read
        key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size, None if is_image else (start, duration))
        if self._visual is not None and self._visual.key == key:
            return self._visual
        self._visual = None  # free the previous clip's features before encoding the next
        if is_image:
            with self._stage("video decode"):
                frames = load_image_frames(path)
            clip = self._encode_clip(frames)
            self._visual = VisualFeatures(key, None, clip, None)
            return self._visual

        from deepsound.media import decode_video

        with self._stage("video decode"):
            video = decode_video(path, duration, start=start)
        clip = self._encode_clip(video.clip_frames)
        sync = self._encode_sync(video.sync_frames)
        self._visual = VisualFeatures(key, video.duration, clip, sync)
        return self._visual

    def _encode_clip(self, frames: torch.Tensor) -> torch.Tensor:
        with self._stage("clip"):
            return self.clip.encode_image(
                frames.unsqueeze(0).to(self.device, self.dtype), batch_size=FRAME_BATCH
            )

    def _encode_sync(self, frames: torch.Tensor) -> torch.Tensor:
        with self._stage("synchformer"):
            return self.synchformer.encode(
                frames.unsqueeze(0).to(self.device, self.dtype), batch_size=FRAME_BATCH
            )

    def _encode_text(self, text: str) -> torch.Tensor:
        cached = self._text.get(text)
        if cached is None:
            cached = self.clip.encode_text([text]).to(self.device, self.dtype)
            self._text[text] = cached
            while len(self._text) > _TEXT_CACHE_SIZE:
                self._text.popitem(last=False)
        else:
            self._text.move_to_end(text)
        return cached

    def clear_cache(self) -> None:
        self._visual = None
        self._text.clear()

    # ------------------------------------------------------------ timing

    def _stage(self, name: str) -> StageTimer:
        return StageTimer(self, name)

    def describe(self) -> dict[str, Any]:
        return {
            "variant": self.variant,
            "mode": self.mode,
            "device": str(self.device),
            "dtype": str(self.dtype).removeprefix("torch."),
            "batched_cfg": self.batched_cfg,
        }


def load_image_frames(path: Path) -> torch.Tensor:
    """One picture as MMAudio's image mode reads it: ``(1, 3, 384, 384)`` float32 in [0, 1]."""
    from PIL import Image, UnidentifiedImageError

    from deepsound.media.video import clip_transform

    try:
        with Image.open(path) as image:
            pixels = np.array(image.convert("RGB"))
    except (OSError, UnidentifiedImageError) as exc:
        raise MediaError(f"{path}: cannot read the image ({exc})") from None
    return clip_transform(torch.from_numpy(pixels).unsqueeze(0).permute(0, 3, 1, 2))
