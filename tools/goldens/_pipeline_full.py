"""The reference pipeline at full size for ``benchmarks/bench_pipeline.py --memory``.

Two jobs, both run in the throwaway environment of ``deepsound_pipeline.py``:

* :func:`write_weights` builds the official MMAudio small_16k parts (network, DFN5B CLIP
  ViT-H-14-384, Synchformer, 16 kHz VAE and BigVGAN) and BS-RoFormer viperx at full size, fills
  them with ``fill_seeded`` (MMAudio seed 5 with the network's ``latent_std`` made positive,
  BS-RoFormer seed 0 made "all voice", as in the tiny goldens), and writes them as the published
  files are laid out (``pretrained/v2a/mmaudio/...``, ``pretrained/remove_vo/checkpoints/...``,
  the hub's ``open_clip_pytorch_model.bin`` and ``open_clip_config.json``). Both sides then load
  the same files: the reference with its own loading code, this project with ``--weights``.
* :class:`FullReference` is the tiny golden's ``Reference`` with the reference's *own*
  ``V2A_MMAudio.__init__`` and ``Step3.__init__`` (checkpoint reads included), run from that
  folder. Substituted only: the download-or-verify calls (the files are not the published bytes,
  and the hub is unreachable: ``download_if_needed`` does nothing, open_clip's hub download returns
  the local file) and the two arguments the golden fixes everywhere, float32
  (``full_precision=True``) and the number of Euler steps. Skipping the md5 check spares the
  reference a whole-file read per checkpoint: that favours the reference's peak, not ours.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import torch

MMAUDIO_DIR = "pretrained/v2a/mmaudio"
CLIP_DIR = "hf-hub/apple--DFN5B-CLIP-ViT-H-14-384"
ROFORMER_DIR = "pretrained/remove_vo/checkpoints"
ROFORMER_STEM = "model_bs_roformer_ep_317_sdr_12.9755"
# our registry's names -> where the reference reads each file, under the weights folder
LAYOUT = {
    "mmaudio_small_16k": f"{MMAUDIO_DIR}/weights/mmaudio_small_16k.pth",
    "vae_16k": f"{MMAUDIO_DIR}/ext_weights/v1-16.pth",
    "bigvgan_16k": f"{MMAUDIO_DIR}/ext_weights/best_netG.pt",
    "synchformer": f"{MMAUDIO_DIR}/ext_weights/synchformer_state_dict.pth",
    "clip_dfn5b": f"{CLIP_DIR}/open_clip_pytorch_model.bin",
    "clip_dfn5b_config": f"{CLIP_DIR}/open_clip_config.json",
    "bs_roformer_viperx": f"{ROFORMER_DIR}/{ROFORMER_STEM}.ckpt",
    "bs_roformer_viperx_config": f"{ROFORMER_DIR}/{ROFORMER_STEM}.yaml",
}


def _official_paths(official: Path) -> None:
    for path in (str(official), str(official / "third_party" / "MMAudio")):
        if path not in sys.path:
            sys.path.append(path)


def _save(state: Any, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(target.suffix + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, target)


def _roformer_yaml() -> dict[str, Any]:
    """Our packaged viperx YAML with the published file's tuples back in place of lists."""
    import yaml

    from goldens.deepsound_pipeline import ROOT

    data = yaml.safe_load((ROOT / "src/deepsound/data/bs_roformer_viperx.yaml").read_text(encoding="utf-8"))
    data["model"] = {k: tuple(v) if isinstance(v, list) else v for k, v in data["model"].items()}
    return data


def write_weights(official: Path, folder: Path) -> dict[str, str]:
    """Every full-size file, one model in memory at a time; returns name -> path."""
    import gc

    from deepsound.models.mmaudio.clip import default_model_config
    from deepsound.testing.equivalence import fill_seeded
    from goldens._mmaudio_dec import V2_CONFIG, _vae, _vocoder
    from goldens.deepsound_pipeline import MMAUDIO_SEED, ROFORMER_SEED, ROOT, all_voice

    _official_paths(official)
    data = ROOT / "tests" / "data"
    paths = {name: folder / rel for name, rel in LAYOUT.items()}

    def build_network() -> Any:
        from mmaudio.model.networks import get_my_mmaudio

        net = fill_seeded(get_my_mmaudio("small_16k").eval(), MMAUDIO_SEED)
        with torch.no_grad():
            net.latent_std.abs_().add_(0.5)
        return net.state_dict()

    def build_clip() -> Any:
        import open_clip

        return fill_seeded(open_clip.model.CLIP(**default_model_config()), MMAUDIO_SEED).state_dict()

    def build_synchformer() -> Any:
        from mmaudio.ext.synchformer.synchformer import Synchformer

        return fill_seeded(Synchformer(), MMAUDIO_SEED).state_dict()

    def build_vocoder() -> Any:
        v2 = json.loads((data / V2_CONFIG).read_text())
        return {"generator": fill_seeded(_vocoder("16k", True, v2), MMAUDIO_SEED).state_dict()}

    def build_roformer() -> Any:
        from pipeline import step3

        model = step3.BSRoformer(**_roformer_yaml()["model"])
        return all_voice(fill_seeded(model, ROFORMER_SEED)).state_dict()

    builders = {
        "mmaudio_small_16k": build_network,
        "clip_dfn5b": build_clip,
        "synchformer": build_synchformer,
        "vae_16k": lambda: fill_seeded(_vae("16k", full=True), MMAUDIO_SEED).state_dict(),
        "bigvgan_16k": build_vocoder,
        "bs_roformer_viperx": build_roformer,
    }
    for name, build in builders.items():
        if not paths[name].is_file():
            _save(build(), paths[name])
            gc.collect()
            print(f"[weights] {name}: {paths[name]}", file=sys.stderr)
    config = {"model_cfg": default_model_config(), "preprocess_cfg": {"mean": [0.5] * 3, "std": [0.5] * 3}}
    paths["clip_dfn5b_config"].write_text(json.dumps(config, indent=1) + "\n", encoding="utf-8")
    import yaml

    # the published YAML's tuples (``!!python/tuple``), which the reference's model class insists on
    text = yaml.dump(_roformer_yaml(), sort_keys=False)
    paths["bs_roformer_viperx_config"].write_text(text, encoding="utf-8")
    return {name: str(path) for name, path in paths.items()}


def patch_full(folder: Path, steps: int) -> None:
    """The reference's own model constructors, reading the files under ``folder`` (see above)."""
    import open_clip.factory
    import v2a_models.v2a_mmaudio as v2a

    os.chdir(folder)  # the reference's checkpoint paths are relative to its working folder
    v2a.ModelConfig.download_if_needed = lambda self: None
    clip_dir = folder / CLIP_DIR

    def local_hub(model_id: str, filename: str | None = None, **_: Any) -> str:
        return str(clip_dir / (filename or "open_clip_pytorch_model.bin"))

    open_clip.factory.download_pretrained_from_hf = local_hub
    init = v2a.V2A_MMAudio.__init__

    def fp32_init(self: Any, variant: str = "large_44k", num_steps: int = 25, **kwargs: Any) -> None:
        init(self, variant, num_steps=steps, full_precision=True, device=kwargs.get("device", "cpu"))

    v2a.V2A_MMAudio.__init__ = fp32_init
