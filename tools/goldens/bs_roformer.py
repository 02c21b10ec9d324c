"""Goldens of BS-RoFormer (voice removal), from the Music-Source-Separation-Training code the paper ran.

Writes every file under ``tests/data/bs_roformer``. The paper's code is the MSST copy bundled with
DeepSound-V1 (``third_party/MusicSourceSeparationTraining``: ``BSRoformer`` and ``utils.demix``, with
rotary-embedding-torch 0.3.5 as its requirements pin); ``model_small_zero_dc.pt`` comes from upstream
MSST, whose newer ``BSRoformer`` zeroes the DC bin by default. Every floating parameter, the rotary
``freqs`` included, is filled with ``deepsound.testing.equivalence.fill_seeded(model, 0)``. Inputs are
stereo test signals: ``0.1 * N(0, 1)`` noise from a seeded ``torch.Generator`` plus tones at 220,
1375 and 5000 Hz (amplitudes 0.2, 0.1, 0.05), stored as float16 so they are exact in float32.

Usage::

    python tools/make_goldens.py bs_roformer --official /path/to/DeepSound-V1 \\
        --upstream /path/to/Music-Source-Separation-Training [--full]
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import torch

from goldens._common import check_checkout, imported_from, save

DESCRIPTION = "BS-RoFormer model and demix (DeepSound-V1's MSST copy; upstream MSST for zero_dc)"
# github.com/lym0302/DeepSound-V1: the paper's repository with its MSST copy.
PAPER_COMMIT = "a775b9e6aac51dc755c5e9c5849d9d870a716dee"
# github.com/ZFTurbo/Music-Source-Separation-Training: upstream, for the zero-DC default.
UPSTREAM_COMMIT = "ccc011abf7f89dd7922bb2888d48493b575c0289"
# The viperx YAML is read at the commit the weights registry pins for it.
VIPERX_YAML = "configs/viperx/model_bs_roformer_ep_317_sdr_12.9755.yaml"
VIPERX_YAML_COMMIT = "d9672dac1160ebe9c39aec3d3f3320190e49a5c0"
MSST_IN_PAPER = "third_party/MusicSourceSeparationTraining"
SEED, RATE = 0, 44100

SMALL = {  # the viperx band layout and STFT at a small width
    "dim": 64,
    "depth": 2,
    "stereo": True,
    "num_stems": 1,
    "time_transformer_depth": 1,
    "freq_transformer_depth": 1,
    "linear_transformer_depth": 0,
    "freqs_per_bands": (2,) * 24 + (4,) * 12 + (12,) * 8 + (24,) * 8 + (48,) * 8 + (128, 129),
    "dim_head": 32,
    "heads": 2,
    "attn_dropout": 0.1,
    "ff_dropout": 0.1,
    "flash_attn": True,
    "dim_freqs_in": 1025,
    "stft_n_fft": 2048,
    "stft_hop_length": 441,
    "stft_win_length": 2048,
    "stft_normalized": False,
    "mask_estimator_depth": 2,
}
# name: (input seed, chunk size, num_overlap, batch size, length)
DEMIX = {
    "overlap2_bs4": (10, 44100, 2, 4, 132300),  # border padding, several batches
    "short_bs4": (11, 44100, 2, 4, 35280),  # shorter than two borders: no padding
    "overlap3_bs3": (12, 44100, 3, 3, 97000),
    "overlap2_bs1": (13, 22050, 2, 1, 61000),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--official", type=Path, required=True, help="checkout of lym0302/DeepSound-V1")
    parser.add_argument(
        "--upstream", type=Path, required=True, help="checkout of ZFTurbo/Music-Source-Separation-Training"
    )
    parser.add_argument(
        "--viperx-yaml",
        type=Path,
        default=None,
        help=f"the viperx YAML (default: {VIPERX_YAML} in --upstream; pinned at {VIPERX_YAML_COMMIT[:12]})",
    )
    parser.add_argument("--full", action="store_true", help="also model_viperx.pt (slow test; ~1 min)")


def signal(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """Seeded noise plus three tones, rounded to float16."""
    noise = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
    t = torch.arange(shape[-1]) / RATE
    x = noise * 0.1
    for amplitude, freq in ((0.2, 220), (0.1, 1375), (0.05, 5000)):
        x = x + amplitude * torch.sin(2 * math.pi * freq * t)
    return x.half()


def _viperx_config(path: Path) -> dict:
    import yaml

    with open(path, encoding="utf-8") as f:
        return dict(yaml.load(f, Loader=yaml.FullLoader)["model"])  # MSST's own loader (python tuples)


def _demix_config(chunk: int, overlap: int, batch: int):
    from ml_collections import ConfigDict

    return ConfigDict(
        {
            "audio": {"chunk_size": chunk},
            "inference": {"num_overlap": overlap, "batch_size": batch},
            "training": {"instruments": ["vocals", "other"], "target_instrument": "vocals"},
        }
    )


def main(args: argparse.Namespace) -> list[Path]:
    from deepsound.testing.equivalence import fill_seeded, parameter_manifest

    paper = check_checkout(args.official, f"{MSST_IN_PAPER}/utils.py", PAPER_COMMIT, "DeepSound-V1")
    upstream = check_checkout(args.upstream, "models/bs_roformer/bs_roformer.py", UPSTREAM_COMMIT, "MSST")
    yaml_path = args.viperx_yaml or upstream / VIPERX_YAML
    out, written = args.out, []
    viperx = _viperx_config(yaml_path)

    with imported_from(paper / MSST_IN_PAPER, "models", "utils"):
        from models.bs_roformer import BSRoformer
        from utils import demix

        with torch.device("meta"):
            manifest = parameter_manifest(BSRoformer(**viperx).state_dict())
        target = out / "bs_roformer" / "manifest_viperx.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(manifest, indent=0) + "\n", encoding="utf-8")
        written.append(Path("bs_roformer/manifest_viperx.json"))

        model = fill_seeded(BSRoformer(**SMALL).eval(), SEED)
        x = signal((2, 2, 22050), 1)
        with torch.inference_mode():
            output = model(x.float())
        golden = {"input": x, "output": output, "config": dict(SMALL), "seed": SEED}
        written.append(save(golden, out, "bs_roformer/model_small.pt"))

        for name, (seed, chunk, overlap, batch, length) in DEMIX.items():
            mix = signal((2, length), seed)
            vocals = demix(
                _demix_config(chunk, overlap, batch), model, mix.float().numpy(), "cpu", "bs_roformer"
            )
            golden = {
                "input": mix,
                "vocals": torch.from_numpy(np.asarray(vocals["vocals"])),
                "name": name,
                "chunk_size": chunk,
                "num_overlap": overlap,
                "batch_size": batch,
                "length": length,
            }
            written.append(save(golden, out, f"bs_roformer/demix_{name}.pt"))

        if args.full:
            model = fill_seeded(BSRoformer(**viperx).eval(), SEED)
            x = signal((1, 2, 13230), 2)
            with torch.inference_mode():
                output = model(x.float())
            written.append(
                save({"input": x, "output": output, "seed": SEED}, out, "bs_roformer/model_viperx.pt")
            )
            del model

    with imported_from(upstream, "models", "utils"):
        from models.bs_roformer import BSRoformer as UpstreamBSRoformer

        model = fill_seeded(UpstreamBSRoformer(**SMALL).eval(), SEED)
        with torch.inference_mode():
            output = model(signal((2, 2, 22050), 1).float())
        written.append(save({"output": output}, out, "bs_roformer/model_small_zero_dc.pt"))
    return written
