"""Goldens of the MMAudio family, from the official MMAudio code (hkchengrex/MMAudio).

Writes every file under ``tests/data/mmaudio`` (flow network, sampler, generation),
``tests/data/mmaudio_cond`` (CLIP, Synchformer) and ``tests/data/mmaudio_dec`` (VAE, vocoders):
the official modules are built at small (and, with ``--full``, published) sizes, every parameter is
filled with ``deepsound.testing.equivalence.fill_seeded`` (values from the seed and the parameter's
name, so our modules with the same names receive the same weights), and the official functions run
on seeded inputs. Each test file's docstring describes its goldens; the recipes here are those.

Usage: ``python tools/make_goldens.py mmaudio --official /path/to/MMAudio [--full]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import torch

from goldens._common import check_checkout, imported_from, save

DESCRIPTION = "MMAudio network, sampler, CLIP, Synchformer, VAE, vocoders, generation (hkchengrex/MMAudio)"
# The commit of github.com/hkchengrex/MMAudio the committed goldens came from.
COMMIT = "974010a026c731054592d8f777218bd9d85a6c24"
VARIANTS = ("small_16k", "small_44k", "medium_44k", "large_44k", "large_44k_v2")
PARTS = ("network", "cond", "dec", "generation")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--official", type=Path, required=True, help="checkout of hkchengrex/MMAudio")
    parser.add_argument(
        "--full", action="store_true", help="also the published-size goldens (slow tests; minutes, ~5 GB)"
    )
    parser.add_argument("--only", choices=PARTS, nargs="+", default=list(PARTS), help="a subset of parts")


def main(args: argparse.Namespace) -> list[Path]:
    official = check_checkout(args.official, "mmaudio/model/networks.py", COMMIT, "MMAudio")
    written: list[Path] = []
    from goldens import _mmaudio_cond, _mmaudio_dec, _mmaudio_gen

    with imported_from(official, "mmaudio"):
        if "network" in args.only:
            written += network_goldens(args.out, full=args.full)
        if "cond" in args.only:
            written += _mmaudio_cond.goldens(args.out, full=args.full)
        if "dec" in args.only:
            written += _mmaudio_dec.goldens(args.out, full=args.full)
        if "generation" in args.only:
            written += _mmaudio_gen.goldens(args.out)
    return written


# ------------------------------------------------------------------------------------------ network
def _seq(mode: str, duration: float):
    from mmaudio.model.sequence_config import CONFIG_16K, CONFIG_44K

    return dataclasses.replace(CONFIG_16K if mode == "16k" else CONFIG_44K, duration=duration)


def _tiny_network(mode: str, v2: bool, duration: float):
    from mmaudio.model.networks import MMAudio

    seq = _seq(mode, duration)
    return MMAudio(
        latent_dim=20 if mode == "16k" else 40,
        clip_dim=32,
        sync_dim=24,
        text_dim=32,
        hidden_dim=64,
        depth=3,
        fused_depth=1,
        num_heads=2,
        latent_seq_len=seq.latent_seq_len,
        clip_seq_len=seq.clip_seq_len,
        sync_seq_len=seq.sync_seq_len,
        v2=v2,
    )


def _features(net, gen: torch.Generator, batch: int) -> dict[str, torch.Tensor]:
    n = {"clip_f": net.clip_seq_len, "sync_f": net.sync_seq_len, "text_f": 77}
    dims = {"clip_f": net.clip_input_proj[0].in_features, "sync_f": net.sync_input_proj[0].in_channels}
    dims["text_f"] = net.text_input_proj[0].in_features
    return {k: torch.randn(batch, n[k], dims[k], generator=gen) for k in ("clip_f", "sync_f", "text_f")}


def _velocity(net, seed: int, batch: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    latent = torch.randn(batch, net.latent_seq_len, net.latent_dim, generator=gen)
    feats = _features(net, gen, batch)
    t = torch.rand(batch, generator=gen)
    with torch.inference_mode():
        out = net(latent.clone(), feats["clip_f"], feats["sync_f"], feats["text_f"], t)
    return {"latent": latent, **feats, "t": t, "velocity": out}


def _sample(net, *, seed: int, steps: int, cfg: float, negative: bool, dtype: torch.dtype) -> dict:
    """The steps of the official ``eval_utils.generate`` after feature extraction."""
    from mmaudio.model.flow_matching import FlowMatching

    gen = torch.Generator().manual_seed(seed + 100)
    feats = _features(net, gen, 1)
    if negative:
        feats["neg_f"] = torch.randn(1, 77, feats["text_f"].shape[-1], generator=gen)
    feats = {k: v.to(dtype) for k, v in feats.items()}
    x0 = torch.randn(
        1, net.latent_seq_len, net.latent_dim, dtype=dtype, generator=torch.Generator("cpu").manual_seed(seed)
    )
    fm = FlowMatching(min_sigma=0, inference_mode="euler", num_steps=steps)
    with torch.inference_mode():
        cond = net.preprocess_conditions(feats["clip_f"], feats["sync_f"], feats["text_f"])
        empty = net.get_empty_conditions(1, negative_text_features=feats.get("neg_f"))
        x1 = fm.to_data(lambda t, x: net.ode_wrapper(t, x, cond, empty, cfg), x0.clone())
        latents = net.unnormalize(x1)
    return {"seed": seed, "cfg": cfg, "steps": steps, **feats, "x0": x0, "latents": latents}


def network_goldens(out: Path, *, full: bool) -> list[Path]:
    from mmaudio.model.networks import get_my_mmaudio

    from deepsound.testing.equivalence import fill_seeded, parameter_manifest

    manifests = {}
    for name in VARIANTS:
        with torch.device("meta"):
            manifests[name] = parameter_manifest(get_my_mmaudio(name).state_dict())
    target = out / "mmaudio" / "network_manifests.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(manifests, indent=0) + "\n", encoding="utf-8")
    written = [Path("mmaudio/network_manifests.json")]

    tiny = {}
    for case, mode, v2, duration in (("tiny16k_v1", "16k", False, 1.0), ("tiny44k_v2", "44k", True, 1.3)):
        net = fill_seeded(_tiny_network(mode, v2, duration).eval(), seed=7)
        entry = {"mode": mode, "v2": v2, "duration": duration, "velocity": _velocity(net, 1, 2)}
        recipes = {
            "sample_neg": dict(seed=42, steps=5, cfg=4.5, negative=True),
            "sample_empty": dict(seed=3, steps=4, cfg=4.5, negative=False),
            "sample_nocfg": dict(seed=5, steps=3, cfg=0.5, negative=False),
        }
        for key, recipe in recipes.items():
            entry[key] = _sample(net, dtype=torch.float32, **recipe)
        # bfloat16 as the official demo runs it: cast, then the rotations recomputed in float32
        net = net.to(torch.bfloat16)
        net.update_seq_lengths(net.latent_seq_len, net.clip_seq_len, net.sync_seq_len)
        entry["sample_bf16"] = _sample(net, dtype=torch.bfloat16, seed=42, steps=5, cfg=4.5, negative=True)
        tiny[case] = entry
    written.append(save(tiny, out, "mmaudio/network_tiny.pt"))

    for name, mode in (("small_16k", "16k"), ("large_44k_v2", "44k")):
        if name == "large_44k_v2" and not full:
            continue
        seq = _seq(mode, 1.0)
        net = get_my_mmaudio(name)
        net.update_seq_lengths(seq.latent_seq_len, seq.clip_seq_len, seq.sync_seq_len)
        net = fill_seeded(net.eval(), seed=11)
        golden = {name: {"mode": mode, "duration": 1.0, "velocity": _velocity(net, 2, 1)}}
        del net
        written.append(save(golden, out, f"mmaudio/network_{name}.pt"))
    return written
