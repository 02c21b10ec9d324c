"""Tiny configurations of the real architectures with seeded random weights: tests and examples.

Each builder makes the same classes the published checkpoints load into, at toy widths, with
weights from a seed, in milliseconds and without any file. Production code never imports this
module (a test checks it); tests, benchmarks and notebooks do.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from deepsound.errors import ConfigError
from deepsound.models.bs_roformer.config import BsRoformerConfig
from deepsound.models.bs_roformer.network import build_model
from deepsound.models.bs_roformer.separator import BsRoformerSeparator
from deepsound.models.mmaudio.clip import ClipConditioner, tiny_model_config
from deepsound.models.mmaudio.generator import MMAudioGenerator
from deepsound.models.mmaudio.network import MMAudioNetwork
from deepsound.models.mmaudio.synchformer import SynchformerConfig, SynchformerEncoder
from deepsound.models.mmaudio.vae import (
    _VAE_CONFIGS,
    _VOCODER_CONFIGS,
    AudioDecoder,
    BigVGAN,
    BigVGANConfig,
    MelVAE,
    VAEConfig,
    _check_mode,
)
from deepsound.models.mmaudio.variants import Mode, tiny_spec
from deepsound.models.qwen_omni.reasoner import _FAMILIES as OMNI_FAMILIES
from deepsound.models.qwen_omni.reasoner import SAMPLE_RATE, OmniReasoner
from deepsound.testing.equivalence import fill_seeded


def clip_conditioner(seed: int = 0) -> ClipConditioner:
    """A small random CLIP built through the same open_clip code path, for tests."""
    torch.manual_seed(seed)
    return ClipConditioner(tiny_model_config())


def synchformer_encoder(seed: int = 0) -> SynchformerEncoder:
    """Small random encoder (width 64, 2 blocks) on the real 224 px / 16-frame grid, for tests."""
    torch.manual_seed(seed)
    model = SynchformerEncoder(SynchformerConfig(embed_dim=64, depth=2, num_heads=4))
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.02)
    return model


def audio_decoder(mode: Mode, *, seed: int = 0, need_encoder: bool = False) -> AudioDecoder:
    """The same code path with small widths and random weights, for tests."""
    _check_mode(mode)
    full_vae, full_voc = _VAE_CONFIGS[mode], _VOCODER_CONFIGS[mode]
    vae_cfg = VAEConfig(data_dim=full_vae.data_dim, embed_dim=full_vae.embed_dim, hidden_dim=8)
    voc_cfg = BigVGANConfig(
        num_mels=full_voc.num_mels,
        upsample_rates=full_voc.upsample_rates,
        upsample_kernel_sizes=full_voc.upsample_kernel_sizes,
        upsample_initial_channel=128,
        resblock_kernel_sizes=full_voc.resblock_kernel_sizes,
        resblock_dilation_sizes=full_voc.resblock_dilation_sizes,
        sampling_rate=full_voc.sampling_rate,
        use_bias_at_final=full_voc.use_bias_at_final,
        use_tanh_at_final=full_voc.use_tanh_at_final,
    )
    gen = torch.Generator().manual_seed(seed)
    vae = MelVAE(vae_cfg, with_encoder=need_encoder)
    vocoder = BigVGAN(voc_cfg)
    with torch.no_grad():
        for module in (vae, vocoder):
            for name, p in module.named_parameters():
                scale = 0.1 if p.ndim <= 1 else 1.0 / max(p[0].numel(), 1) ** 0.5
                p.copy_(torch.randn(p.shape, generator=gen) * scale)
                if name.endswith("learnable_gain"):
                    p.zero_()
    vae.fold()
    return AudioDecoder(mode, vae.eval().requires_grad_(False), vocoder.eval().requires_grad_(False)).eval()


def mmaudio_generator(
    seed: int = 0,
    mode: Mode = "16k",
    *,
    v2: bool = False,
    device: str = "cpu",
    dtype: torch.dtype = torch.float32,
    batched_cfg: bool | None = None,
) -> MMAudioGenerator:
    """Every part with the real structure, small widths and random weights (built in-process)."""
    clip = clip_conditioner(seed=seed)
    synchformer = synchformer_encoder(seed=seed)
    decoder = audio_decoder(mode, seed=seed)
    spec = dataclasses.replace(
        tiny_spec(mode, v2=v2),
        latent_dim=decoder.latent_dim,
        clip_dim=clip.image_dim,
        text_dim=clip.text_dim,
        sync_dim=synchformer.feature_dim,
    )
    network = fill_seeded(MMAudioNetwork(spec), seed=seed)
    with torch.no_grad():  # a usable latent scale: positive standard deviations
        network.latent_std.abs_().add_(0.5)
    return MMAudioGenerator(
        network,
        clip,
        synchformer,
        decoder,
        mode=mode,
        variant=f"tiny_{mode}",
        device=device,
        dtype=dtype,
        batched_cfg=batched_cfg,
    )


def bs_roformer_separator(seed: int = 0, **kwargs: Any) -> BsRoformerSeparator:
    """A toy-sized model with seeded random weights (tests, examples); runs in milliseconds."""
    config = kwargs.pop("config", None) or BsRoformerConfig.tiny()
    model = fill_seeded(build_model(config), seed)
    kwargs.setdefault("source", f"tiny random weights (seed {seed})")
    return BsRoformerSeparator(model, **kwargs)


# ------------------------------------------------------------------ Qwen-Omni


def omni_reasoner(
    *, seed: int = 0, max_new_tokens: int = 8, dtype: str = "float32", family: str = "qwen2_5_omni"
) -> OmniReasoner:
    """A real Qwen-Omni thinker with random weights and small dimensions, built in-process.

    ``family`` is ``qwen2_5_omni`` (the default model's) or ``qwen3_omni_moe``.
    The tokenizer is a byte-level BPE vocabulary (256 byte symbols, no merges)
    wrapped in transformers' Qwen2 tokenizer class with the special tokens the
    processor and chat template need; the feature extractor, image and video
    processors are the real classes. Nothing is read from disk or the network.
    """
    import torch
    import transformers

    if family not in ("qwen2_5_omni", "qwen3_omni_moe"):
        raise ConfigError(f"no tiny configuration for model family {family!r}")
    qwen3 = family == "qwen3_omni_moe"
    patch = 16 if qwen3 else 14  # vision patch side; a merged token covers (2 * patch)^2 pixels
    processor = _tiny_processor(qwen3=qwen3, patch_size=patch)
    config = _tiny_thinker_config(processor.tokenizer, qwen3=qwen3)
    torch.manual_seed(seed)
    thinker_cls = getattr(transformers, OMNI_FAMILIES[family][0])
    model = thinker_cls(config).eval()
    model.to(getattr(torch, dtype))
    tok = processor.tokenizer
    model.generation_config.eos_token_id = [tok.convert_tokens_to_ids("<|im_end|>"), tok.eos_token_id]
    model.generation_config.pad_token_id = tok.pad_token_id
    token_pixels = (2 * patch) ** 2
    return OmniReasoner(
        model,
        processor,
        model_id=f"tiny-random-{family}",
        max_new_tokens=max_new_tokens,
        max_frames=8,
        min_pixels=4 * token_pixels,
        max_pixels=16 * token_pixels,
    )


_TINY_SPECIAL_TOKENS = {
    "audio_token": "<|AUDIO|>",
    "image_token": "<|IMAGE|>",
    "video_token": "<|VIDEO|>",
    "audio_bos_token": "<|audio_bos|>",
    "audio_eos_token": "<|audio_eos|>",
    "vision_bos_token": "<|vision_bos|>",
    "vision_eos_token": "<|vision_eos|>",
}
_TINY_CHAT_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")

# ChatML, the conversation format of the Qwen family, with Qwen-Omni's media placeholders.
_TINY_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'video' %}<|vision_bos|><|VIDEO|><|vision_eos|>"
    "{% elif part['type'] == 'image' %}<|vision_bos|><|IMAGE|><|vision_eos|>"
    "{% elif part['type'] == 'audio' %}<|audio_bos|><|AUDIO|><|audio_eos|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _tiny_processor(*, qwen3: bool = False, patch_size: int = 14) -> Any:
    """The real Qwen-Omni processor over a locally built byte-level tokenizer."""
    import transformers
    from tokenizers import AddedToken
    from tokenizers.pre_tokenizers import ByteLevel

    vocab = {symbol: index for index, symbol in enumerate(sorted(ByteLevel.alphabet()))}
    specials = [*_TINY_CHAT_TOKENS, *_TINY_SPECIAL_TOKENS.values()]
    for token in specials:
        vocab[token] = len(vocab)
    tokenizer = transformers.Qwen2Tokenizer(
        vocab=vocab, merges=[], extra_special_tokens=dict(_TINY_SPECIAL_TOKENS)
    )
    tokenizer.add_tokens(
        [AddedToken(t, special=True, normalized=False) for t in specials], special_tokens=True
    )
    processor_cls = transformers.Qwen3OmniMoeProcessor if qwen3 else transformers.Qwen2_5OmniProcessor
    return processor_cls(
        image_processor=transformers.Qwen2VLImageProcessor(patch_size=patch_size),
        video_processor=transformers.Qwen2VLVideoProcessor(patch_size=patch_size),
        feature_extractor=transformers.WhisperFeatureExtractor(feature_size=128, sampling_rate=SAMPLE_RATE),
        tokenizer=tokenizer,
        chat_template=_TINY_CHAT_TEMPLATE,
    )


def _tiny_thinker_config(tokenizer: Any, *, qwen3: bool = False) -> Any:
    """A thinker with the published structure (audio tower, vision tower, M-RoPE decoder) and tiny widths."""
    import transformers

    audio = {
        "num_mel_bins": 128,
        "encoder_layers": 1,
        "encoder_attention_heads": 2,
        "encoder_ffn_dim": 32,
        "d_model": 16,
        "output_dim": 32,
    }
    vision = {"depth": 2, "hidden_size": 16, "intermediate_size": 32, "num_heads": 2, "out_hidden_size": 32}
    text = {
        "vocab_size": len(tokenizer),
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "rope_parameters": {"rope_type": "default", "rope_theta": 1e6, "mrope_section": [2, 3, 3]},
    }
    tokens = {
        "audio_start_token_id": tokenizer.audio_bos_token_id,
        "audio_end_token_id": tokenizer.audio_eos_token_id,
        "vision_start_token_id": tokenizer.vision_bos_token_id,
        "vision_end_token_id": tokenizer.vision_eos_token_id,
        "user_token_id": tokenizer.convert_tokens_to_ids("u"),
    }
    if qwen3:
        audio.update(downsample_hidden_size=8)
        vision.update(patch_size=16, num_position_embeddings=64, deepstack_visual_indexes=[1])
        text.update(head_dim=16, moe_intermediate_size=16, num_experts=4, num_experts_per_tok=2)
        text["rope_parameters"] = {**text["rope_parameters"], "mrope_interleaved": True}
        return transformers.Qwen3OmniMoeThinkerConfig(
            audio_config=audio,
            vision_config=vision,
            text_config=text,
            audio_token_id=tokenizer.audio_token_id,
            image_token_id=tokenizer.image_token_id,
            video_token_id=tokenizer.video_token_id,
            **tokens,
        )
    vision.update(fullatt_block_indexes=[1])
    return transformers.Qwen2_5OmniThinkerConfig(
        audio_config=audio,
        vision_config=vision,
        text_config=text,
        audio_token_index=tokenizer.audio_token_id,
        image_token_index=tokenizer.image_token_id,
        video_token_index=tokenizer.video_token_id,
        **tokens,
    )
