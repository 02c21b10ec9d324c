"""Goldens of FoleyCrafter, from the official code (open-mmlab/FoleyCrafter).

Writes ``tests/data/foleycrafter/``:

* ``tiny_configs.json`` / ``tiny_files.json``: the small configurations and the layout (file →
  key → shape) of every published file at that size, taken from the official modules; the tests
  write the same files from them (``deepsound.testing.foleycrafter_checkpoint``);
* ``manifest.json``: every key and shape of every published file at the published size
  (official modules built on the meta device with the released configurations);
* ``components.pt``: detector logits, ControlNet residuals and UNet noise for seeded inputs,
  CLIP pixel values, tokens and text states, and the onset map for several durations;
* ``e2e_small.pt`` (default test: a 256-column canvas, 4 steps), ``e2e_synthetic.pt``,
  ``e2e_negative.pt`` and ``e2e_aa.pt`` (slow tests: the official 1024 columns, 25 steps): the
  official inference end to end — frames → onsets → condition → image embedding → 25 PNDM steps
  → spectrogram → vocoder → 16-bit waveform — on seeded frames and on ``aa.mp4``.

The official files are written by ``write_tiny_checkpoint`` with weights seeded by key name and
loaded by the official loaders (``build_foleycrafter``, ``load_ip_adapter``,
``Generator.from_pretrained``, ``torch_utils.load_model``). The inference loop of the official
``inference.py`` is a script, not a function, so its steps are called here one by one, with its
hard-coded ``cuda`` replaced by the CPU; its ``150`` in the onset mapping is the frame count
(150 for the real clip, as official). Imports the official code needs but never uses here
(``decord``, ``torchaudio``, ``pydub``) are stubbed and peft is hidden, at run time.

Run with diffusers 0.25.1, transformers 4.30.2, huggingface_hub < 0.26 and moviepy 1.0.3:
``python tools/make_goldens.py foleycrafter --official /path/to/FoleyCrafter [--media ../shared/media]``.
"""

from __future__ import annotations

import argparse
import importlib.machinery
import json
import sys
import tempfile
import types
from pathlib import Path

import numpy as np
import torch

from goldens._common import check_checkout, imported_from, save

DESCRIPTION = "FoleyCrafter detector, adapters, UNet, sampler, vocoder, end to end (open-mmlab/FoleyCrafter)"
COMMIT = "c2399fa3cb7ecf860df5a873763dd3a1a59b4bc3"
SEED = 0
OUT = "foleycrafter"

UNET = dict(
    sample_size=32,
    in_channels=4,
    out_channels=4,
    down_block_types=["CrossAttnDownBlock2D", "DownBlock2D"],
    up_block_types=["UpBlock2D", "CrossAttnUpBlock2D"],
    block_out_channels=[32, 64],
    layers_per_block=1,
    cross_attention_dim=32,
    attention_head_dim=4,
    norm_num_groups=8,
)
VAE = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=["DownEncoderBlock2D"] * 4,
    up_block_types=["UpDecoderBlock2D"] * 4,
    block_out_channels=[8, 8, 16, 16],
    layers_per_block=1,
    latent_channels=4,
    norm_num_groups=4,
    sample_size=64,
    scaling_factor=0.18215,
)
TEXT = dict(
    vocab_size=514,
    hidden_size=32,
    intermediate_size=37,
    num_hidden_layers=2,
    num_attention_heads=4,
    max_position_embeddings=77,
    projection_dim=32,
    bos_token_id=512,
    eos_token_id=513,
    pad_token_id=513,
)
VISION = dict(
    hidden_size=32,
    intermediate_size=37,
    num_hidden_layers=2,
    num_attention_heads=4,
    image_size=224,
    patch_size=32,
    projection_dim=16,
)
VOCODER = dict(
    resblock="1",
    num_mels=256,
    upsample_rates=[5, 4, 2, 2, 2],
    upsample_kernel_sizes=[11, 8, 4, 5, 4],  # one odd (kernel - rate): the output-padding branch
    upsample_initial_channel=64,
    resblock_kernel_sizes=[3, 7, 11],
    resblock_dilation_sizes=[[1, 3, 5], [1, 3, 5], [1, 3, 5]],
    sampling_rate=16000,
)
SCHEDULER = dict(
    _class_name="PNDMScheduler",
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    num_train_timesteps=1000,
    set_alpha_to_one=False,
    skip_prk_steps=True,
    steps_offset=1,
    trained_betas=None,
)

# The published sizes: Auffusion is Stable Diffusion 1.5's UNet/VAE with CLIP ViT-L/14's text tower,
# the image encoder is IP-Adapter's OpenCLIP ViT-H/14. The vocoder's numbers are Auffusion's
# HiFi-GAN as far as they can be known here (its config.json travels with the weights and our loader
# reads it, so these numbers only shape this manifest).
FULL = {
    "unet": dict(
        sample_size=64,
        in_channels=4,
        out_channels=4,
        down_block_types=["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
        up_block_types=["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3,
        block_out_channels=[320, 640, 1280, 1280],
        layers_per_block=2,
        cross_attention_dim=768,
        attention_head_dim=8,
        norm_num_groups=32,
    ),
    "vae": dict(
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D"] * 4,
        up_block_types=["UpDecoderBlock2D"] * 4,
        block_out_channels=[128, 256, 512, 512],
        layers_per_block=2,
        latent_channels=4,
        norm_num_groups=32,
        sample_size=512,
    ),
    "text": dict(
        vocab_size=49408,
        hidden_size=768,
        intermediate_size=3072,
        num_hidden_layers=12,
        num_attention_heads=12,
        max_position_embeddings=77,
        projection_dim=768,
    ),
    "vision": dict(
        hidden_size=1280,
        intermediate_size=5120,
        num_hidden_layers=32,
        num_attention_heads=16,
        image_size=224,
        patch_size=14,
        projection_dim=1024,
        hidden_act="gelu",
    ),
    "vocoder": dict(VOCODER, upsample_kernel_sizes=[11, 8, 4, 4, 4], upsample_initial_channel=1024),
}

PROMPT = "rain on a tin roof"
STEPS, GUIDANCE, SEMANTIC, TEMPORAL = 25, 7.5, 1.0, 0.2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--official", type=Path, help="checkout of open-mmlab/FoleyCrafter (required)")
    parser.add_argument("--media", type=Path, default=Path("../shared/media"), help="folder holding aa.mp4")
    parser.add_argument("--only", nargs="+", default=["files", "components", "small", "e2e", "real"])


def _stub_unused_imports() -> None:
    for name in ("decord", "torchaudio", "pydub"):
        try:
            __import__(name)
        except Exception:  # noqa: BLE001 - absent or broken: the official imports it, never uses it here
            module = types.ModuleType(name)
            module.VideoReader = module.AudioReader = object  # type: ignore[attr-defined]
            module.__spec__ = importlib.machinery.ModuleSpec(name, None)
            sys.modules[name] = module
    # a newer peft installed beside this old diffusers cannot be imported by it; the pipeline only
    # asks for it to unwrap adapters it does not have
    import diffusers.utils.import_utils as import_utils

    import_utils._peft_available = False


def main(args: argparse.Namespace) -> list[Path]:
    if args.official is None:
        raise SystemExit("foleycrafter: --official (a checkout of open-mmlab/FoleyCrafter) is required")
    official = check_checkout(
        args.official, "foleycrafter/pipelines/pipeline_controlnet.py", COMMIT, "FoleyCrafter"
    )
    _stub_unused_imports()
    torch.set_num_threads(max(1, args.threads))
    written: list[Path] = []
    with imported_from(official, "foleycrafter"), tempfile.TemporaryDirectory() as tmp:
        layout, configs = _tiny_layout()
        written.append(_json(args.out, f"{OUT}/tiny_files.json", layout))
        written.append(_json(args.out, f"{OUT}/tiny_configs.json", configs))
        if "files" in args.only:
            written.append(_json(args.out, f"{OUT}/manifest.json", _manifest()))
        from deepsound.testing.foleycrafter_checkpoint import write_tiny_checkpoint

        folders = write_tiny_checkpoint(Path(tmp), layout, configs, SEED)
        models = _load_official(folders)
        if "components" in args.only:
            written.append(save(_components(models), args.out, f"{OUT}/components.pt"))
        if "small" in args.only:
            small = _e2e(models, synthetic_frames(), 1.6, PROMPT, "", 42, width=256, steps=4)
            written.append(save(small, args.out, f"{OUT}/e2e_small.pt"))
        if "e2e" in args.only:
            frames = synthetic_frames()
            written.append(
                save(_e2e(models, frames, 1.6, PROMPT, "", 42), args.out, f"{OUT}/e2e_synthetic.pt")
            )
            written.append(
                save(_e2e(models, frames, 3.3, "", "human voice", 7), args.out, f"{OUT}/e2e_negative.pt")
            )
        if "real" in args.only:
            written.append(save(_real(models, args.media / "aa.mp4"), args.out, f"{OUT}/e2e_aa.pt"))
    return written


def synthetic_frames() -> np.ndarray:
    """Eight 40×56 RGB frames: smooth colour ramps with a bright square that jumps at frame 4."""
    gen = torch.Generator().manual_seed(11)
    base = torch.rand(8, 1, 1, 3, generator=gen) * 120 + torch.linspace(0, 80, 56).reshape(1, 1, 56, 1)
    frames = base.expand(8, 40, 56, 3).clone()
    frames[4:, 10:22, 20:34] = 250
    return frames.round().clamp(0, 255).to(torch.uint8).numpy()


def _json(out: Path, relative: str, data: object) -> Path:
    target = out / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return Path(relative)


# ------------------------------------------------------------------------------------ official modules
def _official_modules(cfg: dict, *, meta: bool = False) -> dict[str, torch.nn.Module]:
    from diffusers import AutoencoderKL, ControlNetModel
    from foleycrafter.models.auffusion_unet import UNet2DConditionModel
    from foleycrafter.models.time_detector.model import VideoOnsetNet
    from foleycrafter.pipelines.auffusion_pipeline import AttrDict, Generator
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPVisionConfig, CLIPVisionModelWithProjection

    device = torch.device("meta") if meta else torch.device("cpu")
    with device:
        unet = UNet2DConditionModel(**cfg["unet"])
        return {
            "unet": unet,
            "controlnet": ControlNetModel.from_unet(unet, conditioning_channels=1),
            "vae": AutoencoderKL(**cfg["vae"]),
            "text": CLIPTextModel(CLIPTextConfig(**cfg["text"])),
            "vision": CLIPVisionModelWithProjection(CLIPVisionConfig(**cfg["vision"])),
            "detector": VideoOnsetNet(False),
            "vocoder": Generator(AttrDict(cfg["vocoder"])),
        }


def _ip_adapter_layout(unet_cfg: dict, clip_dim: int) -> dict[str, list[int]]:
    """The IP-Adapter file's keys: image projection + to_k_ip/to_v_ip of every cross-attention,
    numbered by position among all attention processors (self-attentions hold the even numbers)."""
    from foleycrafter.models.auffusion_unet import UNet2DConditionModel

    with torch.device("meta"):
        unet = UNet2DConditionModel(**unet_cfg)
    cross, channels = unet_cfg["cross_attention_dim"], unet_cfg["block_out_channels"]
    keys = {
        "image_proj/proj.weight": [4 * cross, clip_dim],
        "image_proj/proj.bias": [4 * cross],
        "image_proj/norm.weight": [cross],
        "image_proj/norm.bias": [cross],
    }
    for index, name in enumerate(unet.attn_processors):
        if name.endswith("attn1.processor"):
            continue
        if name.startswith("mid_block"):
            hidden = channels[-1]
        elif name.startswith("up_blocks"):
            hidden = list(reversed(channels))[int(name.split(".")[1])]
        else:
            hidden = channels[int(name.split(".")[1])]
        for kind in ("to_k_ip", "to_v_ip"):
            keys[f"ip_adapter/{index}.{kind}.weight"] = [hidden, cross]
    return keys


def _shapes(module: torch.nn.Module, prefix: str = "") -> dict[str, list[int]]:
    return {prefix + k: list(v.shape) for k, v in module.state_dict().items()}


def _layout_of(cfg: dict, *, meta: bool) -> dict[str, dict[str, list[int]]]:
    m = _official_modules(cfg, meta=meta)
    return {
        "auffusion/unet/diffusion_pytorch_model.safetensors": _shapes(m["unet"]),
        "auffusion/vae/diffusion_pytorch_model.safetensors": _shapes(m["vae"]),
        "auffusion/text_encoder/pytorch_model.bin": _shapes(m["text"]),
        "foleycrafter/temporal_adapter.ckpt": _shapes(m["controlnet"], "state_dict/module."),
        "foleycrafter/timestamp_detector.pth.tar": _shapes(m["detector"], "state_dict/module."),
        "foleycrafter/semantic/semantic_adapter.bin": _ip_adapter_layout(
            cfg["unet"], cfg["vision"]["projection_dim"]
        ),
        "foleycrafter/vocoder/vocoder.pt": _shapes(m["vocoder"], "generator/"),
        "image_encoder/model.safetensors": _shapes(m["vision"]),
    }


def _tiny_layout() -> tuple[dict, dict]:
    from transformers import CLIPTextConfig, CLIPVisionConfig

    cfg = {"unet": UNET, "vae": VAE, "text": TEXT, "vision": VISION, "vocoder": VOCODER}
    layout = _layout_of(cfg, meta=False)
    configs = {
        "tokenizer_max_length": 77,
        "json_files": {
            "auffusion/model_index.json": {"_class_name": "StableDiffusionPipeline"},
            "auffusion/unet/config.json": dict(UNET, _class_name="UNet2DConditionModel"),
            "auffusion/vae/config.json": dict(VAE, _class_name="AutoencoderKL"),
            "auffusion/text_encoder/config.json": CLIPTextConfig(**TEXT).to_dict(),
            "auffusion/scheduler/scheduler_config.json": SCHEDULER,
            "foleycrafter/vocoder/config.json": VOCODER,
            "image_encoder/config.json": CLIPVisionConfig(**VISION).to_dict(),
        },
    }
    return layout, configs


def _manifest() -> dict:
    """Published sizes: the configurations and every file's keys, without the training wrappers
    (``state_dict``/``module.``/``generator``; the semantic adapter keeps its two tables)."""

    def bare(key: str) -> str:
        if key.startswith(("image_proj/", "ip_adapter/")):
            return key.replace("/", ".", 1)
        return key.split("/", 1)[-1].removeprefix("module.")

    layout = _layout_of(FULL, meta=True)
    files = {file: {bare(k): shape for k, shape in keys.items()} for file, keys in layout.items()}
    return {"configs": FULL, "files": files}


def _load_official(folders: dict[str, Path]) -> dict:
    """Everything loaded the way the official ``build_models`` and ``run_inference`` load it."""
    from foleycrafter.models.onset import torch_utils
    from foleycrafter.models.time_detector.model import VideoOnsetNet
    from foleycrafter.pipelines.auffusion_pipeline import Generator
    from foleycrafter.utils.util import build_foleycrafter
    from transformers import CLIPVisionModelWithProjection

    fc = folders["foleycrafter"]
    pipe = build_foleycrafter(str(folders["auffusion"]))
    ckpt = torch.load(fc / "temporal_adapter.ckpt", map_location="cpu")
    if "state_dict" in ckpt:
        ckpt = ckpt["state_dict"]
    state = {k[len("module.") :] if k.startswith("module.") else k: v for k, v in ckpt.items()}
    missing, unexpected = pipe.controlnet.load_state_dict(state, strict=False)
    assert not missing and not unexpected, (missing, unexpected)
    pipe.load_ip_adapter(
        str(fc / "semantic"), subfolder="", weight_name="semantic_adapter.bin", image_encoder_folder=None
    )
    pipe.set_ip_adapter_scale(SEMANTIC)
    vocoder = Generator.from_pretrained(str(fc), subfolder="vocoder")
    detector = VideoOnsetNet(False)  # left in training mode, as the official inference leaves it
    detector, _ = torch_utils.load_model(
        str(fc / "timestamp_detector.pth.tar"), detector, device="cpu", strict=True
    )
    encoder = CLIPVisionModelWithProjection.from_pretrained(str(folders["image_encoder"]))
    return {"pipe": pipe, "vocoder": vocoder, "detector": detector, "encoder": encoder}


# ------------------------------------------------------------------------------------ goldens
def _time_condition(probs: torch.Tensor, duration: float, width: int = 1024) -> torch.Tensor:
    """inference.py's onset mapping, with its frame count (150) and canvas width (1024) as arguments."""
    frames = probs.shape[0]
    row = [
        -1 if probs[int(i / (width / 10 * duration) * frames)] < 0.5 else 1
        for i in range(int(width / 10 * duration))
    ]
    row = row + [-1] * (width - len(row))
    return torch.FloatTensor(row).unsqueeze(0).unsqueeze(0).unsqueeze(0).repeat(1, 1, 256, 1)


def _condition_row(pipe, probs: torch.Tensor, duration: float, width: int = 1024) -> torch.Tensor:
    """The onset map as the pipeline hands it to the ControlNet (its control preprocessing applied)."""
    image = _time_condition(probs, duration, width)
    prepared = pipe.control_image_processor.preprocess(image, height=256, width=width)
    return prepared[0, 0, 0].clone()


def _detector_frames(frames: np.ndarray) -> torch.Tensor:
    import torchvision

    transform = torchvision.transforms.Compose(
        [
            torchvision.transforms.Resize((128, 128)),
            torchvision.transforms.CenterCrop((112, 112)),
            torchvision.transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
        ]
    )
    return transform(torch.FloatTensor(frames).permute(0, 3, 1, 2)).unsqueeze(0).permute(0, 2, 1, 3, 4)


def _components(models: dict) -> dict:
    from transformers import CLIPImageProcessor

    pipe = models["pipe"]
    gen = torch.Generator().manual_seed(3)
    out: dict = {}
    with torch.no_grad():
        det_in = torch.randn(1, 3, 6, 48, 48, generator=gen) * 200
        out["detector_input"] = det_in
        out["detector_logits"] = models["detector"]({"frames": det_in.clone()})
        probs = torch.rand(150, generator=gen)
        out["mapping_probs"] = probs
        out["mapping"] = {d: _condition_row(pipe, probs, d) for d in (1.6, 4.37, 10.0, 10.03, 10.4)}
        latents = torch.randn(2, 4, 8, 32, generator=gen)
        text = torch.randn(2, 77, 32, generator=gen)
        cond = torch.where(torch.rand(2, 1, 1, 256, generator=gen) < 0.5, -1.0, 1.0).repeat(1, 1, 64, 1)
        image_embeds = [torch.randn(2, 1, 16, generator=gen)]
        t = torch.tensor(601)
        down, mid = pipe.controlnet(
            latents,
            t,
            encoder_hidden_states=text,
            controlnet_cond=cond,
            conditioning_scale=TEMPORAL,
            guess_mode=False,
            return_dict=False,
        )
        noise = pipe.unet(
            latents,
            t,
            encoder_hidden_states=text,
            down_block_additional_residuals=down,
            mid_block_additional_residual=mid,
            added_cond_kwargs={"image_embeds": image_embeds},
            return_dict=False,
        )[0]
        out.update(latents=latents, text=text, cond=cond, image_embeds=image_embeds[0], t=t)
        out.update(down=[d.clone() for d in down], mid=mid, noise=noise)
        frames = synthetic_frames()
        pixels = CLIPImageProcessor()(images=frames, return_tensors="pt").pixel_values
        out["pixel_values_strided"] = pixels[:, :, ::8, ::8].clone()  # the whole tensor is 5 MB
        out["pixel_values_sum"] = pixels.double().sum()
        out["image_embedding"] = models["encoder"](pixels).image_embeds.mean(dim=0, keepdim=True)
        tokens = pipe.tokenizer(
            [PROMPT], padding="max_length", max_length=77, truncation=True, return_tensors="pt"
        )
        out["prompt_ids"] = tokens.input_ids
        out["prompt_states"] = pipe.text_encoder(tokens.input_ids)[0]
        mel = torch.randn(256, 64, generator=gen) * 2 - 4
        out["vocoder_mel"] = mel
        out["vocoder_wave"] = models["vocoder"](mel)
    return out


def _run(
    models: dict,
    frames: np.ndarray,
    duration: float,
    prompt: str,
    negative: str,
    seed: int,
    width: int = 1024,
    steps: int = STEPS,
) -> dict:
    """The body of the official ``run_inference`` for one clip, on the CPU (``width`` 1024 and 25
    ``steps`` are the official; the small default-test golden narrows the canvas and the steps)."""
    from foleycrafter.pipelines.auffusion_pipeline import denormalize_spectrogram
    from transformers import CLIPImageProcessor

    pipe = models["pipe"]
    generator = torch.Generator(device="cpu").manual_seed(seed)
    with torch.no_grad():
        preds = torch.sigmoid(models["detector"]({"frames": _detector_frames(frames)}))
        condition = _condition_row(pipe, preds[0], duration, width)
        time_condition = _time_condition(preds[0], duration, width)
        images = CLIPImageProcessor()(images=frames, return_tensors="pt")
        embeds = models["encoder"](**images).image_embeds
        embedding = torch.mean(embeds, dim=0, keepdim=True)
        image_embeddings = embedding.unsqueeze(0).unsqueeze(0)
        image_embeddings = torch.cat([torch.zeros_like(image_embeddings), image_embeddings], dim=1)
        latents_seen: list[torch.Tensor] = []
        sample = pipe(
            prompt=prompt,
            negative_prompt=negative,
            ip_adapter_image_embeds=image_embeddings,
            image=time_condition,
            controlnet_conditioning_scale=TEMPORAL,
            num_inference_steps=steps,
            height=256,
            width=width,
            output_type="pt",
            generator=generator,
            callback_on_step_end=lambda p, i, t, kw: latents_seen.append(kw["latents"].clone()) or {},
        )
        spectrogram = denormalize_spectrogram(sample.images[0])
        wave = models["vocoder"].inference(spectrogram, lengths=160000)[0]
        wave = wave[: int(duration * 16000)]
    return {
        "duration": duration,
        "prompt": prompt,
        "negative_prompt": negative,
        "seed": seed,
        "steps": steps,
        "width": width,
        "probabilities": preds[0].clone(),
        "condition": condition,
        "image_embedding": embedding,
        "latents": latents_seen[-1],
        "spectrogram": spectrogram,
        "wave_int16": torch.from_numpy(np.asarray(wave, dtype=np.int16).copy()),
    }


def _e2e(
    models: dict, frames: np.ndarray, duration: float, prompt: str, negative: str, seed: int, **kw
) -> dict:
    return {
        "frames": torch.from_numpy(frames.copy()),
        **_run(models, frames, duration, prompt, negative, seed, **kw),
    }


def _real(models: dict, video: Path) -> dict:
    from foleycrafter.utils.util import read_frames_with_moviepy

    frames, duration = read_frames_with_moviepy(str(video), max_frame_nums=150)
    result = _run(models, frames, duration, "", "", 42)
    result["video"] = video.name
    result["frame_means"] = torch.from_numpy(frames.reshape(150, -1).mean(axis=1))
    return result
