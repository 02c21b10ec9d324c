"""MMAudio generation end to end: ``tests/data/mmaudio/generation_tiny_{16k,44k}.pt``.

Recipe (see ``tests/test_mmaudio_generator.py``): every official part built small and filled with
``fill_seeded(seed=5)`` (the network's ``latent_std`` then made positive, ``abs_().add_(0.5)``, as a
trained one is), wired into the official ``FeaturesUtils`` and run through the official
``eval_utils.generate`` for a video, a text-only and an image case. Frames for every case come from
a generator seeded 31 (CLIP frames in [0, 1], then Synchformer frames in [-1, 1], float16, repeated
8x along height and width).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch
from torch import nn

from goldens._common import save
from goldens._mmaudio_cond import CLIP_ARCH, CLIP_MEAN, CLIP_STD, TINY_CLIP, _synchformer
from goldens._mmaudio_dec import V2_CONFIG, _vae, _vocoder

SEED, FRAME_SEED, UPSAMPLE = 5, 31, 8
CASES = {
    "video": dict(duration=1.0, prompt="rain on a tin roof", negative_prompt="human voice"),
    "text": dict(duration=0.8, prompt="a dog barks", negative_prompt=""),
    "image": dict(duration=0.7, prompt="", negative_prompt="music"),
}
STEPS, CFG, RNG_SEED = 4, 4.5, 42


def _network(mode: str):
    from mmaudio.model.networks import MMAudio

    return MMAudio(
        latent_dim=20 if mode == "16k" else 40,
        clip_dim=32,
        sync_dim=64,
        text_dim=32,
        hidden_dim=64,
        depth=3,
        fused_depth=1,
        num_heads=2,
        latent_seq_len=8,
        clip_seq_len=8,
        sync_seq_len=16,
        v2=mode == "44k",
    )


def _parts(mode: str, data: Path):
    """The official FeaturesUtils holding tiny seeded CLIP, Synchformer, VAE and vocoder."""
    import open_clip
    from mmaudio.ext.autoencoder.autoencoder import AutoEncoderModule
    from mmaudio.ext.bigvgan.bigvgan import BigVGAN
    from mmaudio.model.utils.features_utils import FeaturesUtils, patch_clip
    from torchvision.transforms import Normalize

    from deepsound.testing.equivalence import fill_seeded

    vae = fill_seeded(_vae(mode, full=False).eval(), SEED)
    inner = fill_seeded(_vocoder(mode, False, json.loads((data / V2_CONFIG).read_text())).eval(), SEED)
    record = {
        "vae_params": {k: list(v.shape) for k, v in vae.named_parameters()},
        "vae_buffers": {k: v.clone() for k, v in vae.named_buffers()},
        "vocoder_params": {k: list(v.shape) for k, v in inner.named_parameters()},
        "vocoder_buffers": {k: v.clone() for k, v in inner.named_buffers()},
    }
    vae.remove_weight_norm()
    if mode == "16k":  # the official 16 kHz wrapper, without its checkpoint loading
        vocoder = BigVGAN.__new__(BigVGAN)
        nn.Module.__init__(vocoder)
        vocoder.vocoder = inner
        vocoder.weight_norm_removed = False
        vocoder.remove_weight_norm()
    else:
        vocoder = inner
        vocoder.remove_weight_norm()
    tod = AutoEncoderModule.__new__(AutoEncoderModule)  # its __init__ only loads checkpoints
    nn.Module.__init__(tod)
    tod.vae, tod.vocoder = vae, vocoder.eval()

    utils = FeaturesUtils(enable_conditions=False)
    utils.clip_model = patch_clip(fill_seeded(open_clip.model.CLIP(**TINY_CLIP), SEED).eval())
    utils.clip_preprocess = Normalize(mean=CLIP_MEAN, std=CLIP_STD)
    utils.tokenizer = open_clip.get_tokenizer(CLIP_ARCH)
    utils.synchformer = fill_seeded(_synchformer(tiny=True).eval(), SEED)
    utils.tod = tod
    return utils.eval(), inner, record


def goldens(out: Path, data: Path | None = None) -> list[Path]:
    from mmaudio.eval_utils import generate
    from mmaudio.model.flow_matching import FlowMatching
    from mmaudio.model.sequence_config import CONFIG_16K, CONFIG_44K

    from deepsound.testing.equivalence import fill_seeded

    data = data or Path(__file__).resolve().parents[2] / "tests" / "data"
    written = []
    for mode in ("16k", "44k"):
        utils, conv_owner, record = _parts(mode, data)
        net = fill_seeded(_network(mode).eval(), SEED)
        with torch.no_grad():
            net.latent_std.abs_().add_(0.5)
        golden = {"v2": mode == "44k", "seed": SEED, **record, "cases": {}}
        for kind, case in CASES.items():
            seq = dataclasses.replace(CONFIG_16K if mode == "16k" else CONFIG_44K, duration=case["duration"])
            net.update_seq_lengths(seq.latent_seq_len, seq.clip_seq_len, seq.sync_seq_len)
            gen = torch.Generator().manual_seed(FRAME_SEED)
            n_clip = 1 if kind != "video" else seq.clip_seq_len
            clip_lowres = torch.rand(n_clip, 3, 48, 48, generator=gen).half()
            n_sync = int(case["duration"] * seq.sync_frame_rate)
            sync_lowres = (torch.rand(n_sync, 3, 28, 28, generator=gen) * 2 - 1).half()

            def grow(x: torch.Tensor) -> torch.Tensor:
                return x.float().repeat_interleave(UPSAMPLE, -1).repeat_interleave(UPSAMPLE, -2)[None]

            captured: dict[str, torch.Tensor] = {}
            hook = conv_owner.conv_post.register_forward_hook(
                lambda m, i, o, captured=captured: captured.setdefault("pre", o)
            )
            decode = utils.decode

            def recording_decode(z: torch.Tensor, decode=decode, captured=captured) -> torch.Tensor:
                captured["latents"] = z.clone()
                captured["mel"] = decode(z)
                return captured["mel"]

            utils.decode = recording_decode
            with torch.inference_mode():
                audio = generate(
                    None if kind == "text" else grow(clip_lowres),
                    None if kind == "text" else grow(sync_lowres),
                    [case["prompt"]],
                    negative_text=[case["negative_prompt"]],
                    feature_utils=utils,
                    net=net,
                    fm=FlowMatching(min_sigma=0, inference_mode="euler", num_steps=STEPS),
                    rng=torch.Generator("cpu").manual_seed(RNG_SEED),
                    cfg_strength=CFG,
                    image_input=kind == "image",
                )
            hook.remove()
            del utils.decode
            golden["cases"][kind] = {
                **case,
                "kind": kind,
                "seed": RNG_SEED,
                "num_steps": STEPS,
                "cfg_strength": CFG,
                "clip_lowres": clip_lowres,
                "sync_lowres": sync_lowres,
                "upsample": UPSAMPLE,
                "audio": audio.squeeze(1).clone(),
                "latents": captured["latents"],
                "mel": captured["mel"].clone(),
                "pre_final": captured["pre"].squeeze(1).clone(),
            }
        written.append(save(golden, out, f"mmaudio/generation_tiny_{mode}.pt"))
    return written
