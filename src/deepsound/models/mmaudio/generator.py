"""Step 1 of DeepSound: MMAudio video-to-audio generation, equal to the official ``generate``.

For the same weights, video, prompts and seed this produces the waveform of
MMAudio's demo: features from CLIP (8 fps frames and the prompts) and
Synchformer (25 fps), noise from a generator seeded on the target device,
25 guided Euler steps, VAE decoding to a mel spectrogram and BigVGAN.

What differs is only where time goes and what is held. By default everything
is loaded once per process. Built ``staged`` (``--residency one``), the
sub-models load when first used, one group at a time (:mod:`.parts`): the
conditions are computed encoder by encoder (:meth:`condition`, which a batch
calls for all its clips before sampling any), then the network, VAE and
vocoder sample and decode. Features of recent videos and prompts are kept, so
the paper's ``neg`` fallback, which regenerates the same clip with another
negative prompt, neither decodes nor encodes the video again. On a GPU the two
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
from deepsound.models.mmaudio.network import MMAudioNetwork, NetworkSpec
from deepsound.models.mmaudio.parts import Parts, check_part, part_loaders
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
# what a staged generator computes ahead, one encoder at a time (:meth:`MMAudioGenerator.condition`)
CONDITIONS = ("image", "motion", "text")
_TEXT_CACHE_SIZE = 16
# staged, a batch's conditions are all computed before any clip samples: room for a long batch
# (a 10 s clip's features take about 1 MB, a prompt's 0.3 MB)
_STAGED_CACHE_SIZE = 512

# frames (CLIP) or 16-frame windows (Synchformer) per forward pass, as the reference batches them
FRAME_BATCH = 40


@dataclass
class VisualFeatures:
    """Encoded conditions of one video or image, kept to serve regenerations of the same clip."""

    key: tuple
    duration: float | None  # effective duration of a video; None for an image (any duration)
    clip: torch.Tensor | None  # (1, T, clip_dim); None until computed (staged generation)
    sync: torch.Tensor | None  # (1, S*8, sync_dim); None for an image (or until computed)


class MMAudioGenerator:
    """The :class:`~deepsound.interfaces.Generator` of step 1."""

    name = "mmaudio"

    def __init__(
        self,
        network: MMAudioNetwork | None,
        clip: ClipConditioner | None,
        synchformer: SynchformerEncoder | None,
        decoder: AudioDecoder | None,
        *,
        mode: Mode,
        variant: str = "custom",
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        batched_cfg: bool | None = None,
        compile: bool = False,
        loaders: dict[str, Any] | None = None,
        spec: NetworkSpec | None = None,
    ) -> None:
        """Ready-made parts, or (:meth:`staged`) ``loaders`` for the parts given as None."""
        self.variant = variant
        self.mode: Mode = mode
        self.device = torch.device(device)
        self.dtype = dtype
        self.compile = compile
        if spec is None and network is None:
            raise ConfigError("a staged MMAudio generator needs the network's spec")
        self.spec: NetworkSpec = spec if spec is not None else network.spec  # type: ignore[union-attr]
        given = {"network": network, "synchformer": synchformer, "decoder": decoder, "clip_image": clip}
        placed = {name: self._place(name, m) for name, m in given.items() if m is not None}
        if clip is not None:  # one CLIP with both towers serves images and text
            placed["clip_text"] = placed["clip_image"]
        self.staged = bool(loaders)
        self.parts = Parts(placed, loaders, one_group=self.staged, prepare=self._place)
        # Batching both guidance branches pays off on a GPU; on the CPU it changes nothing but rounding.
        self.batched_cfg = self.device.type == "cuda" if batched_cfg is None else batched_cfg
        self._cache_size = _STAGED_CACHE_SIZE if self.staged else 1
        self._visual: OrderedDict[tuple, VisualFeatures] = OrderedDict()
        self._text: OrderedDict[str, torch.Tensor] = OrderedDict()
        self.timings: dict[str, float] = {}
        self.sync_timings = False  # set to time stages on a GPU (synchronises after each)

    # ------------------------------------------------------------ parts

    @property
    def network(self) -> MMAudioNetwork:
        return self.parts.get("network")

    @property
    def clip(self) -> ClipConditioner:
        """CLIP for images (staged: the image tower alone; otherwise both towers)."""
        return self.parts.get("clip_image")

    @property
    def clip_text(self) -> ClipConditioner:
        return self.parts.get("clip_text")

    @property
    def synchformer(self) -> SynchformerEncoder:
        return self.parts.get("synchformer")

    @property
    def decoder(self) -> AudioDecoder:
        return self.parts.get("decoder")

    def release(self) -> list[str]:
        """Free every part that can be loaded again (features and prompts stay): the parts freed."""
        return self.parts.release()

    def _place(self, name: str, module: Any) -> Any:
        """A part moved to the device and dtype, in eval mode, checked against the network."""
        module = module.to(self.device, self.dtype).eval()
        if name == "network":
            module.requires_grad_(False)
            if self.compile:
                module.predict_flow = torch.compile(module.predict_flow)
        check_part(name, module, self.spec, self.mode)
        return module

    # ------------------------------------------------------------ construction

    # ------------------------------------------------------------ construction

    @classmethod
    def from_settings(
        cls, settings: MMAudioSettings, placement: Placement, *, staged: bool = False
    ) -> MMAudioGenerator:
        """Resolve every weight file of ``settings.variant`` and load each model once
        (``staged``: each when first needed, one group at a time, see :mod:`.parts`)."""
        from deepsound.weights.loading import torch_dtype

        variant: Variant = get_variant(settings.variant)
        device, dtype = placement.resolved_device(), torch_dtype(placement.resolved_dtype())
        loaders = part_loaders(placement, variant)
        options = dict(
            mode=variant.mode,
            variant=variant.name,
            device=device,
            dtype=dtype,
            batched_cfg=settings.batched_cfg,
            compile=settings.compile,
        )
        whole = loaders.pop("clip_whole")
        if staged:
            return cls(None, None, None, None, loaders=loaders, spec=variant.network, **options)
        return cls(loaders["network"](), whole(), loaders["synchformer"](), loaders["decoder"](), **options)

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
        # the prompts first: staged, CLIP's text tower goes before the network comes in
        with self._stage("text"):
            text_f = self._encode_text(request.prompt)
            negative_f = self._encode_text(request.negative_prompt)
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

    @torch.inference_mode()
    def condition(self, request: GenerationRequest, what: str) -> dict[str, float]:
        """Compute one kind of ``request``'s conditions ahead and keep it: ``"image"`` (CLIP),
        ``"motion"`` (Synchformer) or ``"text"`` (CLIP text of both prompts); returns the seconds.

        A staged generator (``--residency one``) is asked this for every clip of a batch, one
        kind at a time, before any clip samples: each encoder then loads once per batch.
        """
        if what not in CONDITIONS:
            raise ValueError(f"unknown condition {what!r}; one of {CONDITIONS}")
        self.timings = dict.fromkeys(STAGES, 0.0)
        self._cache_size = _STAGED_CACHE_SIZE  # asked ahead: a whole batch's conditions are kept
        if what == "text":
            for text in dict.fromkeys((request.prompt, request.negative_prompt)):
                with self._stage("text"):
                    self._encode_text(text)
        elif request.video is not None:
            self._visual_features(request.video, float(request.duration), float(request.start), want=(what,))
        return {k: v for k, v in self.timings.items() if v}

    def _visual_features(
        self,
        path: Path | str | None,
        duration: float,
        start: float = 0.0,
        want: tuple[str, ...] = ("image", "motion"),
    ) -> VisualFeatures | None:
        """The features of ``path`` that ``want`` names, from the cache or encoded now."""
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
        entry = self._visual.get(key)
        need_motion = "motion" in want and not is_image and (entry is None or entry.sync is None)
        need_image = ("image" in want or need_motion) and (entry is None or entry.clip is None)
        if not (need_image or need_motion):
            self._visual.move_to_end(key)
            return entry
        if entry is None and self._cache_size == 1:
            self._visual.clear()  # free the previous clip's features before encoding the next
        if is_image:
            with self._stage("video decode"):
                frames = load_image_frames(path)
            entry = VisualFeatures(key, None, self._encode_clip(frames), None)
        else:
            from deepsound.media import decode_video

            with self._stage("video decode"):
                video = decode_video(path, duration, start=start)
            clip = self._encode_clip(video.clip_frames) if need_image else entry.clip  # type: ignore[union-attr]
            sync = self._encode_sync(video.sync_frames) if need_motion else entry and entry.sync
            entry = VisualFeatures(key, video.duration, clip, sync)
        self._visual[key] = entry
        self._visual.move_to_end(key)
        while len(self._visual) > self._cache_size:
            self._visual.popitem(last=False)
        return entry

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
            cached = self.clip_text.encode_text([text]).to(self.device, self.dtype)
            self._text[text] = cached
            while len(self._text) > max(_TEXT_CACHE_SIZE, self._cache_size):
                self._text.popitem(last=False)
        else:
            self._text.move_to_end(text)
        return cached

    def clear_cache(self) -> None:
        self._visual.clear()
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
