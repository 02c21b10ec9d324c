"""Wall time and peak memory of one MMAudio generation, stage by stage: DeepSound beside official MMAudio.

Both sides run at full size with random weights (speed does not depend on
the values) in separate worker processes, one after the other, with the same
video, duration, seed, steps and guidance. The official side needs the
MMAudio sources (``--official PATH``, plus its Python dependencies) and
mirrors the official ``eval_utils.generate`` step by step so that each stage
can be timed. The floor is the FLOPs of each stage (counted with
``torch.utils.flop_counter`` on our run) divided by the measured fp32 matmul
rate of this machine.

    python benchmarks/bench_generation.py --variants small_16k large_44k --duration 1 \\
        --video clip.mp4 --official /path/to/MMAudio
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from machine import describe

STAGES = ("video decode", "clip", "synchformer", "text", "sampling", "vae", "vocoder")


class PeakRss:
    """Samples the resident set size in a thread and keeps the peak per named stage."""

    def __init__(self) -> None:
        self.stage = "load"
        self.peaks: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @staticmethod
    def rss_gib() -> float:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**30

    def _run(self) -> None:
        while not self._stop.is_set():
            rss = self.rss_gib()
            self.peaks[self.stage] = max(self.peaks.get(self.stage, 0.0), rss)
            time.sleep(0.01)

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join()
        return self.peaks


def matmul_gflops(seconds: float = 3.0) -> float:
    import torch

    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    a @ b
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        n += 1
    return 2 * 2048**3 * n / (time.perf_counter() - start) / 1e9


# ------------------------------------------------------------------ workers


def _random_init(module) -> None:
    """Finite random weights fast (the default inits of billion-parameter models are slow)."""
    import torch

    with torch.no_grad():
        for p in module.parameters():
            if p.dtype.is_floating_point:
                p.normal_(0.0, 0.02)


def worker_ours(args: argparse.Namespace) -> dict:
    import torch

    from deepsound.interfaces import GenerationRequest
    from deepsound.models.mmaudio.clip import ClipConditioner
    from deepsound.models.mmaudio.generator import MMAudioGenerator
    from deepsound.models.mmaudio.network import MMAudioNetwork
    from deepsound.models.mmaudio.synchformer import SynchformerEncoder
    from deepsound.models.mmaudio.vae import _VAE_CONFIGS, _VOCODER_CONFIGS, AudioDecoder
    from deepsound.models.mmaudio.vae_network import MelVAE
    from deepsound.models.mmaudio.variants import get_variant
    from deepsound.models.mmaudio.vocoder import BigVGAN

    variant = get_variant(args.variant)
    mem = PeakRss()
    net = MMAudioNetwork(variant.network)
    _random_init(net)
    with torch.no_grad():
        net.latent_mean.zero_()
        net.latent_std.fill_(1.0)
    clip = ClipConditioner.from_pretrained(None)
    sync = SynchformerEncoder()
    vae, vocoder = MelVAE(_VAE_CONFIGS[variant.mode]), BigVGAN(_VOCODER_CONFIGS[variant.mode])
    for m in (clip, sync, vae, vocoder):
        _random_init(m)
    vae.fold()
    decoder = AudioDecoder(variant.mode, vae, vocoder)
    gen = MMAudioGenerator(net, clip, sync, decoder, mode=variant.mode, variant=variant.name)
    request = GenerationRequest(
        video=Path(args.video) if args.video else None,
        prompt="rain on a tin roof",
        negative_prompt="",
        duration=args.duration,
        seed=42,
        num_steps=args.steps,
        cfg_strength=4.5,
    )
    timings: dict[str, float] = {}
    start, cpu_start = time.perf_counter(), time.process_time()
    orig_stage = gen._stage

    def stage(name):
        mem.stage = name
        return orig_stage(name)

    gen._stage = stage  # type: ignore[method-assign]
    wave = gen.generate_waveform(request)
    total, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    timings.update(gen.timings)
    peaks = mem.stop()
    out = {"timings": timings, "total": total, "cpu": cpu, "peaks": peaks, "samples": int(wave.shape[-1])}
    if args.count_flops:
        from torch.utils.flop_counter import FlopCounterMode

        flops: dict[str, float] = {}
        gen.clear_cache()
        counter_stage = orig_stage

        def counted(name):
            ctx = counter_stage(name)

            class Both:
                def __enter__(self_inner):
                    self_inner.fc = FlopCounterMode(display=False)
                    self_inner.fc.__enter__()
                    ctx.__enter__()

                def __exit__(self_inner, *exc):
                    ctx.__exit__(*exc)
                    self_inner.fc.__exit__(*exc)
                    flops[name] = flops.get(name, 0.0) + self_inner.fc.get_total_flops()

            return Both()

        gen._stage = counted  # type: ignore[method-assign]
        gen.generate_waveform(request)
        out["flops"] = flops
    return out


def worker_official(args: argparse.Namespace) -> dict:
    import copy

    import open_clip
    import torch
    from mmaudio.eval_utils import load_video
    from mmaudio.ext.autoencoder.autoencoder import AutoEncoderModule
    from mmaudio.ext.autoencoder.vae import get_my_vae
    from mmaudio.ext.bigvgan.models import BigVGANVocoder
    from mmaudio.ext.bigvgan_v2.bigvgan import BigVGAN as BigVGANv2
    from mmaudio.ext.bigvgan_v2.env import AttrDict
    from mmaudio.ext.synchformer import Synchformer
    from mmaudio.model.flow_matching import FlowMatching
    from mmaudio.model.networks import get_my_mmaudio
    from mmaudio.model.sequence_config import CONFIG_16K, CONFIG_44K
    from mmaudio.model.utils.features_utils import FeaturesUtils, patch_clip
    from omegaconf import OmegaConf
    from torch import nn
    from torchvision.transforms import Normalize

    mode = "16k" if args.variant.endswith("16k") else "44k"
    mem = PeakRss()
    net = get_my_mmaudio(args.variant).eval()
    _random_init(net)
    with torch.no_grad():
        net.latent_mean.zero_()
        net.latent_std.fill_(1.0)
    fu = FeaturesUtils(enable_conditions=False).eval()
    clip = open_clip.create_model("ViT-H-14-378-quickgelu", force_image_size=384)
    _random_init(clip)
    fu.clip_model = patch_clip(clip.eval())
    fu.clip_preprocess = Normalize(
        mean=[0.48145466, 0.4578275, 0.40821073], std=[0.26862954, 0.26130258, 0.27577711]
    )
    fu.tokenizer = open_clip.get_tokenizer("ViT-H-14-378-quickgelu")
    fu.synchformer = Synchformer().eval()
    _random_init(fu.synchformer)
    vae = get_my_vae(mode).eval()
    _random_init(vae)
    vae.remove_weight_norm()
    del vae.encoder
    official_root = Path(args.official)
    if mode == "16k":
        vocoder = BigVGANVocoder(
            OmegaConf.load(official_root / "mmaudio/ext/bigvgan/bigvgan_vocoder.yml")
        ).eval()
    else:
        cfg = dict(resblock="1", num_gpus=0, upsample_rates=[8, 4, 2, 2, 2, 2],
                   upsample_kernel_sizes=[16, 8, 4, 4, 4, 4], upsample_initial_channel=1536,
                   resblock_kernel_sizes=[3, 7, 11], resblock_dilation_sizes=[[1, 3, 5]] * 3,
                   use_tanh_at_final=False, use_bias_at_final=False, activation="snakebeta",
                   snake_logscale=True, num_mels=128, n_fft=2048, hop_size=512, win_size=2048,
                   sampling_rate=44100, fmin=0, fmax=None)  # fmt: skip
        vocoder = BigVGANv2(AttrDict(cfg), use_cuda_kernel=False).eval()
    _random_init(vocoder)
    vocoder.remove_weight_norm()
    tod = AutoEncoderModule.__new__(AutoEncoderModule)
    nn.Module.__init__(tod)
    tod.vae, tod.vocoder = vae, vocoder
    fu.tod = tod

    timings = dict.fromkeys(STAGES, 0.0)

    class Stage:
        def __init__(self, name):
            self.name = name

        def __enter__(self):
            mem.stage = self.name
            self.t = time.perf_counter()

        def __exit__(self, *exc):
            timings[self.name] += time.perf_counter() - self.t

    seq = copy.deepcopy(CONFIG_16K if mode == "16k" else CONFIG_44K)
    start, cpu_start = time.perf_counter(), time.process_time()
    with torch.inference_mode():
        duration = args.duration
        clip_frames = sync_frames = None
        if args.video:
            with Stage("video decode"):
                info = load_video(Path(args.video), duration)
            clip_frames, sync_frames = info.clip_frames.unsqueeze(0), info.sync_frames.unsqueeze(0)
            duration = info.duration_sec
        seq.duration = duration
        net.update_seq_lengths(seq.latent_seq_len, seq.clip_seq_len, seq.sync_seq_len)
        # the body of eval_utils.generate, stage by stage
        if clip_frames is not None:
            with Stage("clip"):
                clip_f = fu.encode_video_with_clip(clip_frames, batch_size=40)
            with Stage("synchformer"):
                sync_f = fu.encode_video_with_sync(sync_frames, batch_size=40)
        else:
            clip_f, sync_f = net.get_empty_clip_sequence(1), net.get_empty_sync_sequence(1)
        with Stage("text"):
            text_f = fu.encode_text(["rain on a tin roof"])
            neg_f = fu.encode_text([""])
        with Stage("sampling"):
            rng = torch.Generator(device="cpu")
            rng.manual_seed(42)
            x0 = torch.randn(1, net.latent_seq_len, net.latent_dim, generator=rng)
            cond = net.preprocess_conditions(clip_f, sync_f, text_f)
            empty = net.get_empty_conditions(1, negative_text_features=neg_f)
            fm = FlowMatching(min_sigma=0, inference_mode="euler", num_steps=args.steps)
            x1 = net.unnormalize(fm.to_data(lambda t, x: net.ode_wrapper(t, x, cond, empty, 4.5), x0))
        with Stage("vae"):
            spec = fu.decode(x1)
        with Stage("vocoder"):
            wave = fu.vocode(spec)
    total, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return {
        "timings": timings,
        "total": total,
        "cpu": cpu,
        "peaks": mem.stop(),
        "samples": int(wave.shape[-1]),
    }


# ------------------------------------------------------------------ driver


def run_worker(kind: str, args: argparse.Namespace, variant: str) -> dict:
    env = dict(os.environ)
    if kind == "official":
        env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [args.official, args.official_site, env.get("PYTHONPATH")])
        )
    cmd = [sys.executable, __file__, "--worker", kind, "--variant", variant, "--duration", str(args.duration),
           "--steps", str(args.steps), "--threads", str(args.threads)]  # fmt: skip
    if args.video:
        cmd += ["--video", args.video]
    if args.official:
        cmd += ["--official", args.official]
    if args.count_flops and kind == "ours":
        cmd += ["--count-flops"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{kind} worker for {variant} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", nargs="+", default=["small_16k", "large_44k"])
    ap.add_argument("--variant", default="small_16k")
    ap.add_argument("--duration", type=float, default=1.0)
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--video", default=None)
    ap.add_argument("--official", default=None, help="root of the official MMAudio sources")
    ap.add_argument(
        "--official-site", default=None, help="extra site dir for the official code's dependencies"
    )
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--count-flops", action="store_true")
    ap.add_argument("--worker", choices=["ours", "official"], default=None)
    args = ap.parse_args()

    if args.worker:
        import torch

        if args.threads:
            torch.set_num_threads(args.threads)
        result = (worker_ours if args.worker == "ours" else worker_official)(args)
        print(json.dumps(result))
        return

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    rate = matmul_gflops()
    print(describe())
    print(f"fp32 matmul rate: {rate:.1f} GFLOP/s ({torch.get_num_threads()} threads); "
          f"duration {args.duration} s, {args.steps} steps, video {args.video or 'none'}")  # fmt: skip
    for variant in args.variants:
        ours = run_worker("ours", args, variant)
        official = run_worker("official", args, variant) if args.official else None
        flops = ours.get("flops", {})
        print(f"\n{variant}")
        print(f"{'stage':<14}{'ours s':>9}{'official s':>12}{'ratio':>8}{'GFLOP':>9}{'floor s':>9}"
              f"{'ours GiB':>10}{'off. GiB':>10}")  # fmt: skip
        for stage in (*STAGES, "total"):
            t_ours = ours["total"] if stage == "total" else ours["timings"].get(stage, 0.0)
            t_off = (
                (official["total"] if stage == "total" else official["timings"].get(stage, 0.0))
                if official
                else None
            )
            gflop = (sum(flops.values()) if stage == "total" else flops.get(stage, 0.0)) / 1e9
            floor = gflop / rate
            peak_o = max(ours["peaks"].values()) if stage == "total" else ours["peaks"].get(stage)
            peak_f = None
            if official:
                peak_f = max(official["peaks"].values()) if stage == "total" else official["peaks"].get(stage)
            ratio = f"{t_ours / t_off:8.2f}" if t_off else f"{'-':>8}"
            print(f"{stage:<14}{t_ours:9.2f}{(t_off if t_off is not None else float('nan')):12.2f}{ratio}"
                  f"{gflop:9.1f}{floor:9.2f}{(peak_o or 0):10.2f}{(peak_f or 0):10.2f}")  # fmt: skip
        if official:  # CPU time is less sensitive than wall time to other load on the machine
            print(f"generation CPU time: ours {ours['cpu']:.2f} s, official {official['cpu']:.2f} s, "
                  f"ratio {ours['cpu'] / official['cpu']:.2f}; wall ratio {ours['total'] / official['total']:.2f}")  # fmt: skip
        if flops:
            total_floor = sum(flops.values()) / 1e9 / rate
            print(f"whole generation: ours {ours['total']:.1f} s = {ours['total'] / total_floor:.2f}x the matmul floor "
                  f"({total_floor:.1f} s)")  # fmt: skip


if __name__ == "__main__":
    main()
