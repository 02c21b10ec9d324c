"""A small VideoLLaMA2 checkpoint folder in the published format, with random weights.

It is what tests, benchmarks and users who want to try the command path
without 17 GB of weights load: ``config.json`` (``model_type``
``videollama2_qwen2``), ``model.safetensors`` with the published parameter
names, ``generation_config.json``, a byte-level Qwen2 tokenizer with the Qwen2
chat template, and a SigLIP folder (weights and image processor) that
``mm_vision_tower`` names by absolute path, as a locally trained checkpoint
names its tower. The reference code loads the same folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# The Qwen2 instruct chat template (ChatML with its default system message), as Qwen2 tokenizers ship it.
QWEN2_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
_SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")


def tiny_tokenizer() -> Any:
    """A byte-level BPE vocabulary (256 byte symbols, no merges) in transformers' Qwen2 tokenizer."""
    import transformers
    from tokenizers import AddedToken
    from tokenizers.pre_tokenizers import ByteLevel

    vocab = {symbol: index for index, symbol in enumerate(sorted(ByteLevel.alphabet()))}
    for token in _SPECIALS:
        vocab[token] = len(vocab)
    tokenizer = transformers.Qwen2Tokenizer(
        vocab=vocab, merges=[], eos_token="<|im_end|>", pad_token="<|endoftext|>", unk_token=None
    )
    tokenizer.add_tokens(
        [AddedToken(t, special=True, normalized=False) for t in _SPECIALS], special_tokens=True
    )
    tokenizer.chat_template = QWEN2_CHAT_TEMPLATE
    return tokenizer


def tiny_config(
    tokenizer: Any, tower: Path, *, num_frames: int = 4, hidden: int = 32, layers: int = 2
) -> dict[str, Any]:
    return {
        "architectures": ["Videollama2Qwen2ForCausalLM"],
        "model_type": "videollama2_qwen2",
        "vocab_size": len(tokenizer),
        "hidden_size": hidden,
        "intermediate_size": 2 * hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-6,
        "rope_theta": 1000000.0,
        "tie_word_embeddings": False,
        "initializer_range": 0.4,  # random weights large enough for the answer to depend on the inputs
        "bos_token_id": tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        "eos_token_id": tokenizer.convert_tokens_to_ids("<|im_end|>"),
        "mm_vision_tower": str(tower),
        "mm_vision_select_layer": -2,
        "mm_vision_select_feature": "patch",
        "mm_projector_type": "stc_connector_v35",
        "mm_hidden_size": 16,
        "mm_audio_tower": "beats.pt",
        "mm_projector_a_type": "mlp2x_gelu",
        "mm_hidden_size_a": 24,
        "hidden_size_a": hidden,
        "num_frames": num_frames,
        "image_aspect_ratio": "pad",
        "use_mm_proj": True,
    }


# BEATs is built by the reference with its default (full) size; a tiny folder carries a small one,
# whose size our loader reads off the weights.
TINY_BEATS = {
    "embed_dim": 16,
    "encoder_layers": 2,
    "encoder_embed_dim": 24,
    "encoder_ffn_embed_dim": 48,
    "encoder_attention_heads": 4,
    "conv_pos": 8,
    "conv_pos_groups": 4,
    "num_buckets": 32,
    "predictor_class": 5,
}


def write_tiny_checkpoint(
    folder: Path, *, seed: int = 0, num_frames: int = 4, hidden: int = 32, layers: int = 2
) -> Path:
    """Write the folder (and ``<folder>/siglip-tiny``); returns ``folder``. ``hidden``/``layers`` size the LLM."""
    import torch
    import transformers
    from safetensors.torch import save_file

    from deepsound.models.videollama2.beats import BeatsConfig
    from deepsound.models.videollama2.model import VideoLlama2

    folder = Path(folder)
    tower = folder / "siglip-tiny"
    tower.mkdir(parents=True, exist_ok=True)
    tokenizer = tiny_tokenizer()
    config = tiny_config(tokenizer, tower.resolve(), num_frames=num_frames, hidden=hidden, layers=layers)
    vision_config = transformers.SiglipVisionConfig(
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=3,
        num_attention_heads=2,
        image_size=28,
        patch_size=7,
    )
    torch.manual_seed(seed)
    model = VideoLlama2(config, vision_config, BeatsConfig.from_dict(TINY_BEATS)).eval()
    with (
        torch.no_grad()
    ):  # BEATs' gate and norm start at their trained-model scale, not at PyTorch's defaults
        for name, param in model.llm.model.audio_tower.named_parameters():
            if name.endswith("weight_g"):
                param.copy_(torch.rand_like(param) + 0.5)
    state = {k: v.contiguous() for k, v in model.llm.state_dict().items()}
    state = {k: v for k, v in state.items() if ".relative_attention_bias." not in k or ".layers.0." in k}
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    (folder / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    generation = transformers.GenerationConfig(
        bos_token_id=config["bos_token_id"],
        eos_token_id=[config["eos_token_id"], config["bos_token_id"]],
        pad_token_id=config["bos_token_id"],
        repetition_penalty=1.05,
        do_sample=True,
        temperature=0.7,
        top_p=0.8,
        top_k=20,
    )
    generation.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    _template_in_tokenizer_config(folder)
    tower_state = {f"vision_model.{k}": v.contiguous() for k, v in model.vision.state_dict().items()}
    save_file(tower_state, str(tower / "model.safetensors"), metadata={"format": "pt"})
    vision_config.save_pretrained(tower)
    transformers.SiglipImageProcessor(size={"height": 28, "width": 28}).save_pretrained(tower)
    return folder


def _template_in_tokenizer_config(folder: Path) -> None:
    """Keep the chat template inside ``tokenizer_config.json``, where checkpoints of the reference's era hold it."""
    from tokenizers.pre_tokenizers import ByteLevel

    # the slow (file-based) Qwen2 tokenizer of older transformers reads vocab.json and merges.txt
    vocab = {symbol: index for index, symbol in enumerate(sorted(ByteLevel.alphabet()))}
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    settings = folder / "tokenizer_config.json"
    values = json.loads(settings.read_text(encoding="utf-8"))
    values["chat_template"] = QWEN2_CHAT_TEMPLATE
    settings.write_text(json.dumps(values, indent=2), encoding="utf-8")
    (folder / "chat_template.jinja").unlink(missing_ok=True)
