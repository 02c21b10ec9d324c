"""Speed of MMAudio's latent -> mel -> waveform decoding at full size: ours vs the official code.

Both sides get identical deterministic random weights (``fill_seeded`` on the official modules,
loaded into ours through our checkpoint loaders), so the table also reports how far apart the
outputs are. The official code is imported from a checkout of hkchengrex/MMAudio given with
``--reference`` (it needs omegaconf, einops and huggingface_hub); without it only our side is
timed. Columns are the median wall time of decode (VAE) and vocode (BigVGAN) together, and the
decode and vocode parts of ours separately.

    python benchmarks/bench_mmaudio_decoders.py --reference ../MMAudio --seconds 2
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict

import torch
from machine import describe

from deepsound.models.mmaudio.vae import AudioDecoder, vae_from_state
from deepsound.models.mmaudio.vae_network import VAE_16K, VAE_44K, MelVAE
from deepsound.models.mmaudio.vocoder import BIGVGAN_16K, BIGVGAN_V2_44K, BigVGAN, bigvgan_from_state
from deepsound.testing.equivalence import fill_seeded, relative_l2

SEED = 1234


def timed(fn: Callable[[], torch.Tensor], repeats: int) -> tuple[float, torch.Tensor]:
    out = fn()  # warm-up (allocator, oneDNN primitive creation)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def official_modules(reference: str, mode: str) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The official VAE and vocoder, seeded, weight norm still in place (as loaded from files)."""
    sys.path.insert(0, reference)
    from mmaudio.ext.autoencoder.vae import get_my_vae

    vae = fill_seeded(get_my_vae(mode).eval(), SEED)
    if mode == "16k":
        from mmaudio.ext.bigvgan.bigvgan import _bigvgan_vocoder_path
        from mmaudio.ext.bigvgan.models import BigVGANVocoder
        from omegaconf import OmegaConf

        vocoder = BigVGANVocoder(OmegaConf.load(_bigvgan_vocoder_path))
    else:
        from mmaudio.ext.bigvgan_v2.bigvgan import BigVGAN as BigVGANv2
        from mmaudio.ext.bigvgan_v2.env import AttrDict

        cfg = asdict(BIGVGAN_V2_44K)
        vocoder = BigVGANv2(AttrDict(copy.deepcopy(cfg)), use_cuda_kernel=False)
    return vae, fill_seeded(vocoder.eval(), SEED)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", help="path of an hkchengrex/MMAudio checkout")
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--modes", default="16k,44k")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: leave default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    rows = []
    for mode in args.modes.split(","):
        vae_cfg, voc_cfg = (VAE_16K, BIGVGAN_16K) if mode == "16k" else (VAE_44K, BIGVGAN_V2_44K)
        latent_frames = round(args.seconds * voc_cfg.sampling_rate / voc_cfg.hop_length / 2)
        z = torch.randn(1, latent_frames, vae_cfg.embed_dim, generator=torch.Generator().manual_seed(0))
        ref = None
        if args.reference:
            off_vae, off_voc = official_modules(args.reference, mode)
            ours = AudioDecoder(
                mode,
                vae_from_state(off_vae.state_dict(), vae_cfg, "official"),
                bigvgan_from_state(off_voc.state_dict(), voc_cfg, "official"),
            )
            off_vae.remove_weight_norm()
            del off_vae.encoder  # as MMAudio does for inference
            off_voc.remove_weight_norm()

            @torch.inference_mode()
            def official(off_vae=off_vae, off_voc=off_voc, z=z):
                return off_voc(off_vae.decode(z.transpose(1, 2))).squeeze(1)

            ref = timed(official, args.repeats)
        else:
            ours = AudioDecoder(mode, _random_vae(vae_cfg), BigVGAN(voc_cfg).eval())

        def run(ours=ours, z=z):
            return ours.vocode(ours.decode(z))

        fast = timed(run, args.repeats)
        mel = ours.decode(z)
        parts = (
            timed(lambda ours=ours, z=z: ours.decode(z), args.repeats)[0],
            timed(lambda ours=ours, mel=mel: ours.vocode(mel), args.repeats)[0],
        )
        audio = fast[1].shape[-1] / voc_cfg.sampling_rate
        rows.append((mode, audio, ref, parts, fast))

    print(describe())
    print(f"threads={torch.get_num_threads()}  (median of {args.repeats}; seconds)")
    header = (
        f"{'mode':5} {'audio s':>7} {'official':>9} {'ours':>8} {'speed-up':>9} {'rel L2':>9}"
        f" {'ours VAE':>9} {'ours voc':>9}"
    )
    print(header)
    print("-" * len(header))
    for mode, audio, ref, parts, fast in rows:
        off_t = f"{ref[0]:9.3f}" if ref else f"{'-':>9}"
        ratio = f"{ref[0] / fast[0]:8.2f}x" if ref else f"{'-':>9}"
        err = f"{relative_l2(fast[1], ref[1]):9.1e}" if ref else f"{'-':>9}"
        print(f"{mode:5} {audio:7.2f} {off_t} {fast[0]:8.3f} {ratio} {err} {parts[0]:9.3f} {parts[1]:9.3f}")


def _random_vae(cfg) -> MelVAE:
    vae = fill_seeded(MelVAE(cfg), SEED)
    vae.fold()
    return vae.eval()


if __name__ == "__main__":
    main()
