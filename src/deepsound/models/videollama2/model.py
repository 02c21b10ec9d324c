"""VideoLLaMA2 (Qwen2 audio-visual edition) as one module with the published parameter names.

The published checkpoints (``lym0302/VideoLLaMA2.1-7B-AV-CoT`` / ``-QA``,
``model_type`` ``videollama2_qwen2``) are a Qwen2 causal LM whose inner model
also holds the connector (``model.mm_projector``), the BEATs audio tower
(``model.audio_tower``) and the audio projector (``model.mm_projector_a``).
Here the LLM is transformers' own :class:`~transformers.Qwen2ForCausalLM` and
the three extra modules are attached to its inner model under those names, so
``state_dict()`` of :attr:`VideoLlama2.llm` is the checkpoint's layout and a
strict load uses every tensor.

The SigLIP vision tower is *not* taken from the checkpoint: the reference
builds it lazily and loads it from the folder or hub id that
``mm_vision_tower`` names, so any ``model.vision_tower.*`` tensors a
checkpoint carries are ignored there; they are dropped here by an explicit rule
for the same reason. Features are the tower's second-to-last hidden state
(``mm_vision_select_layer``), every patch token (SigLIP has no class token).

The splice follows the reference's ``prepare_inputs_labels_for_multimodal``:
each ``<video>`` placeholder in the token ids is replaced by the video tokens
followed, when audio is given, by the audio tokens.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from deepsound.errors import ConfigError, WeightsError
from deepsound.models.videollama2.beats import Beats, BeatsConfig, beats_config_from_state
from deepsound.models.videollama2.connector import StcConnectorV35, projector
from deepsound.weights.loading import LoadRules, apply_rules, load_state_into

MODEL_TYPES = ("videollama2_qwen2",)
PLACEHOLDER_ID = -201  # the reference's index for "<video>" in token ids
VIDEO_TOKEN = "<video>"
_SUPPORTED = "videollama2_qwen2 (VideoLLaMA2.1-AV, --mllm videollama2-cot/-qa), qwen2_5_omni and qwen3_omni_moe (--mllm omni)"

_SHARED_BIAS = re.compile(
    r"^model\.audio_tower\.encoder\.layers\.(\d+)\.self_attn\.relative_attention_bias\.weight$"
)


def _one_bias_table(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """BEATs' relative-position table is one module shared by all layers; keep one copy, as layer 0's.

    A checkpoint may hold it under every layer (a gathered state dict) or under
    one of them only (a save that dropped the duplicates); all copies are equal.
    """
    found = sorted((int(m.group(1)), k) for k in state if (m := _SHARED_BIAS.match(k)))
    if not found:
        return state
    table = state[found[0][1]]
    for _, key in found:
        del state[key]
    state["model.audio_tower.encoder.layers.0.self_attn.relative_attention_bias.weight"] = table
    return state


# checkpoint → module: the reference ignores a stored vision tower (it reloads SigLIP from mm_vision_tower)
CHECKPOINT_RULES = LoadRules(unwrap=(), drop=(r"^model\.vision_tower\.",), transform=_one_bias_table)
# a SigLIP folder holds the whole image-text model (``vision_model.*``, ``text_model.*``); the tower is
# its vision half, which transformers' SiglipVisionModel names without the ``vision_model.`` prefix
TOWER_RULES = LoadRules(
    unwrap=(), rename=((r"^vision_model\.", ""),), drop=(r"^text_model\.", r"^logit_(scale|bias)$")
)


def read_config(folder: Path) -> dict[str, Any]:
    """The checkpoint's ``config.json``; another model family ends in one line naming the supported ones."""
    path = Path(folder) / "config.json"
    if not path.is_file():
        raise WeightsError(f"{folder}: no config.json (not a VideoLLaMA2 checkpoint folder)")
    config = json.loads(path.read_text(encoding="utf-8"))
    kind = config.get("model_type")
    if kind not in MODEL_TYPES:
        raise ConfigError(
            f"{folder}: model type {kind!r} is not supported here; supported families: {_SUPPORTED}"
        )
    return config


def qwen2_config(config: dict[str, Any]) -> Any:
    import transformers

    values = {
        k: v
        for k, v in config.items()
        if k not in ("model_type", "architectures", "auto_map", "transformers_version")
    }
    return transformers.Qwen2Config(**values)


@dataclass(frozen=True)
class Layout:
    """What the checkpoint's config says about the multimodal parts."""

    vision_tower: str
    select_layer: int
    projector: str
    mm_hidden_size: int
    audio: bool
    audio_projector: str
    mm_hidden_size_a: int
    hidden_size: int
    num_frames: int

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Layout:
        kind = config.get("mm_projector_type", "linear")
        if kind != "stc_connector_v35":
            raise ConfigError(
                f"vision projector {kind!r} is not supported (the published AV models use stc_connector_v35)"
            )
        hidden = int(config["hidden_size"])
        return cls(
            vision_tower=str(config["mm_vision_tower"]),
            select_layer=int(config.get("mm_vision_select_layer", -2)),
            projector=kind,
            mm_hidden_size=int(config["mm_hidden_size"]),
            audio="mm_audio_tower" in config,
            audio_projector=str(config.get("mm_projector_a_type", "linear")),
            mm_hidden_size_a=int(config.get("mm_hidden_size_a", 768)),
            hidden_size=int(config.get("hidden_size_a", hidden)),
            num_frames=int(config.get("num_frames", 8)),
        )


@contextlib.contextmanager
def _parameters_on_meta():
    """Create parameters on the meta device while buffers stay real, so a 7B model costs nothing until loaded.

    (What ``accelerate.init_empty_weights(include_buffers=False)`` does; kept
    here so that building needs no optional package.) Buffers such as the
    rotary frequencies are not in checkpoints and must be computed for real.
    """
    original = nn.Module.register_parameter

    def register(module: nn.Module, name: str, param: nn.Parameter | None) -> None:
        original(module, name, param)
        if param is not None:
            kind = type(module._parameters[name])
            extra = module._parameters[name].__dict__
            module._parameters[name] = kind(module._parameters[name].to("meta"), **extra)

    nn.Module.register_parameter = register  # type: ignore[method-assign]
    try:
        yield
    finally:
        nn.Module.register_parameter = original  # type: ignore[method-assign]


class VideoLlama2(nn.Module):
    """The LLM with its connector and audio parts (:attr:`llm`) beside the SigLIP tower (:attr:`vision`)."""

    def __init__(self, config: dict[str, Any], vision_config: Any, beats: BeatsConfig | None = None) -> None:
        super().__init__()
        import transformers

        self.layout = Layout.from_config(config)
        self.llm = transformers.Qwen2ForCausalLM(qwen2_config(config))
        inner = self.llm.model
        inner.mm_projector = StcConnectorV35(self.layout.mm_hidden_size, int(config["hidden_size"]))
        if self.layout.audio:
            inner.audio_tower = Beats(beats or BeatsConfig())
            inner.mm_projector_a = projector(
                self.layout.audio_projector, self.layout.mm_hidden_size_a, self.layout.hidden_size
            )
        self.vision = transformers.SiglipVisionModel(vision_config)

    @property
    def device(self) -> torch.device:
        """Where the input embeddings live (the first device when layers are spread out)."""
        return self.llm.get_input_embeddings().weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.llm.get_input_embeddings().weight.dtype

    # ------------------------------------------------------------------ features

    def encode_video(self, pixels: torch.Tensor) -> torch.Tensor:
        """``(T, 3, H, W)`` normalised frames → ``(tokens, hidden)`` video tokens."""
        tower = self.vision
        out = tower(pixels.to(device=tower.device, dtype=tower.dtype), output_hidden_states=True)
        features = out.hidden_states[self.layout.select_layer]
        connector = self.llm.model.mm_projector
        weight = connector.readout[0].weight
        features = features.to(device=weight.device, dtype=weight.dtype)
        return connector(features.unsqueeze(0))[0]

    def encode_audio(self, fbank: torch.Tensor) -> torch.Tensor:
        """``(1, frames, 128)`` filter banks → ``(tokens, hidden)`` audio tokens."""
        inner = self.llm.model
        if not self.layout.audio:
            raise ConfigError("this checkpoint has no audio tower (no mm_audio_tower in its config)")
        tower = inner.audio_tower
        weight = tower.patch_embedding.weight
        features = tower(fbank.to(device=weight.device, dtype=weight.dtype))
        head = next(inner.mm_projector_a.parameters())
        projected = inner.mm_projector_a(features.to(device=head.device, dtype=head.dtype))
        return projected.reshape(-1, projected.shape[-1])

    def media_tokens(self, pixels: torch.Tensor, fbank: torch.Tensor | None = None) -> torch.Tensor:
        """[video tokens ; audio tokens] as one placeholder's replacement."""
        video = self.encode_video(pixels)
        if fbank is None:
            return video
        return torch.cat([video, self.encode_audio(fbank)], dim=0)

    def embed(self, input_ids: Sequence[int], media: Sequence[torch.Tensor]) -> torch.Tensor:
        """``(1, length, hidden)`` input embeddings: text embedded, each placeholder replaced by its media."""
        ids = torch.as_tensor(list(input_ids), dtype=torch.long, device=self.device)
        table = self.llm.get_input_embeddings()
        positions = (ids == PLACEHOLDER_ID).nonzero().flatten().tolist()
        if len(positions) != len(media):
            raise ConfigError(
                f"{len(positions)} media placeholders in the prompt but {len(media)} media given"
            )
        pieces, start = [], 0
        for position, tokens in zip(positions, media, strict=True):
            pieces += [table(ids[start:position]), tokens.to(device=self.device, dtype=table.weight.dtype)]
            start = position + 1
        pieces.append(table(ids[start:]))
        return torch.cat(pieces, dim=0).unsqueeze(0)

    @torch.inference_mode()
    def logits(self, embeds: torch.Tensor) -> torch.Tensor:
        mask = torch.ones(embeds.shape[:2], dtype=torch.long, device=embeds.device)
        return self.llm(inputs_embeds=embeds, attention_mask=mask).logits

    # ------------------------------------------------------------------ building and loading

    @classmethod
    def empty(
        cls, config: dict[str, Any], vision_config: Any, beats: BeatsConfig | None = None
    ) -> VideoLlama2:
        with _parameters_on_meta():
            return cls(config, vision_config, beats)


def weight_files(folder: Path) -> list[Path]:
    """The folder's ``*.safetensors`` shards, else its ``*.bin`` shards (older or unsafe saves)."""
    files = sorted(Path(folder).glob("*.safetensors")) or sorted(Path(folder).glob("*.bin"))
    if not files:
        raise WeightsError(f"{folder}: no *.safetensors (or *.bin) weight files")
    return files


def read_folder_state(folder: Path, what: str, prefix: str = "") -> dict[str, torch.Tensor]:
    """The tensors (named ``prefix…``) of a folder's weight shards, on the CPU."""
    from safetensors import SafetensorError, safe_open

    from deepsound.weights.loading import read_state_dict

    state: dict[str, torch.Tensor] = {}
    for path in weight_files(folder):
        if path.suffix == ".bin":  # a pickled state dict, read without running code
            state.update(
                {k: v for k, v in read_state_dict(path, what, unwrap=()).items() if k.startswith(prefix)}
            )
            continue
        try:
            with safe_open(str(path), framework="pt", device="cpu") as handle:
                for key in handle.keys():  # noqa: SIM118 - safe_open is not a mapping
                    if key.startswith(prefix):
                        state[key] = handle.get_tensor(key)
        except (SafetensorError, OSError) as exc:
            raise WeightsError(f"{path}: not a readable safetensors file for {what} ({exc})") from None
    return state


def assign_strict(
    module: nn.Module, state: dict[str, torch.Tensor], source: Path | str, what: str, dtype: torch.dtype
) -> None:
    """Strict load that adopts the tensors (``assign``), so meta-built parameters cost no second copy."""
    cast = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in state.items()}
    load_state_into(module, cast, source, what, assign=True)


def load_model(folder: Path, tower_folder: Path, *, dtype: torch.dtype = torch.float32) -> VideoLlama2:
    """Build on the meta device and strictly load the checkpoint folder and the SigLIP tower folder."""
    import transformers

    config = read_config(folder)
    state = apply_rules(read_folder_state(folder, "VideoLLaMA2"), CHECKPOINT_RULES)
    beats = beats_config_from_state(state, "model.audio_tower.") if "mm_audio_tower" in config else None
    vision_config = transformers.SiglipVisionConfig.from_pretrained(str(tower_folder))
    model = VideoLlama2.empty(config, vision_config, beats)
    if config.get("tie_word_embeddings") and "lm_head.weight" not in state:
        state["lm_head.weight"] = state["model.embed_tokens.weight"]
    assign_strict(model.llm, state, folder, "VideoLLaMA2 (Qwen2 AV)", dtype)
    del state
    tower_state = apply_rules(read_folder_state(tower_folder, "SigLIP vision tower"), TOWER_RULES)
    assign_strict(model.vision, tower_state, tower_folder, "SigLIP vision tower", dtype)
    if config.get("tie_word_embeddings"):
        model.llm.tie_weights()
    return model.eval()
