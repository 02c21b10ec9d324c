"""End-to-end goldens: the reference DeepSound-V1 pipeline (``pipeline/pipeline.py``, steps 0-4) run as it is.

Writes ``tests/data/reference_pipeline/``: short excerpts of real clips (the inputs), and for each case
the plan, every step's decision, the step-1, step-3 and final audio, the ``neg`` regeneration and what
the reference wrote to disk. The reference's own ``Pipeline`` class, step classes, ``V2A_MMAudio``,
``eval_utils.generate``, ``load_video``/``make_video``, MSST ``demix`` and ``librosa`` silence check run
unchanged; what is substituted at run time, here only, is what cannot run on this machine:

* **Models at tiny size, seeded by parameter name** (``deepsound.testing.equivalence.fill_seeded``):
  ``V2A_MMAudio.__init__`` and ``Step3.__init__`` only load checkpoints, so they are replaced by
  constructors that hold the official classes at the tiny sizes of the module goldens (MMAudio
  small_16k's structure, the ``generation_tiny`` parts, seed 5; BS-RoFormer at the ``model_small``
  size with the viperx band layout and the viperx YAML's chunking, seed 0). MMAudio runs in float32
  (the reference's ``full_precision=True``; its demo default is bfloat16) with 2 Euler steps
  (its ``num_steps`` argument; the demo's is 25).
* **"All voice" separator** for the silent branch: a random separator never leaves silence, so the
  cases that exercise rm/rep/neg set the last layer of every mask-estimator band to give the mask
  1 + 0j (weights zero, biases 1/0 for real/imaginary and 30 for the gate) — on both sides alike.
* **The MLLM's answer text is fixed** (the same text on both sides): a tiny random VideoLLaMA2 cannot
  write a plan or a verdict. The tiny official-format checkpoint (our ``write_tiny_checkpoint``,
  seed 0) is still loaded by the official classes and asked each question on the official
  ``process_video`` inputs (step by step as ``mm_infer`` does, in float32, ``MLLM_TOKENS`` new tokens,
  as ``tools/goldens/videollama2.py``); its raw answer is recorded, then the fixed text is returned.
* ``torchaudio.save`` needs torchcodec in current torchaudio: it is replaced by a soundfile writer of
  32-bit float WAV, which is what torchaudio wrote for a float tensor when the reference was released.

Usage (a throwaway environment with torchaudio, omegaconf, ml_collections, loralib, pytorchvideo,
rotary-embedding-torch 0.3.5 and transformers 4.42.3 first on ``PYTHONPATH``)::

    python tools/make_goldens.py deepsound_pipeline --official /path/to/DeepSound-V1 --media DIR

``python tools/goldens/deepsound_pipeline.py bench ...`` runs the same reference for
``benchmarks/bench_pipeline.py`` and prints per-step timings as JSON; with ``--full FOLDER`` at full
size, on the seeded files that ``bench-weights OFFICIAL FOLDER`` writes (``_pipeline_full.py``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path
from typing import Any

import numpy as np
import torch

TOOLS = Path(__file__).resolve().parents[1]
ROOT = TOOLS.parent
for _p in (str(ROOT / "src"), str(TOOLS)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from goldens._common import check_checkout  # noqa: E402

DESCRIPTION = "the whole DeepSound-V1 pipeline (steps 0-4, s3/s4, rm/rep/neg) at tiny seeded weights"
# github.com/GiantAILab/DeepSound-V1 (MMAudio, VideoLLaMA2 audio_visual and MSST vendored in third_party/)
COMMIT = "a775b9e6aac51dc755c5e9c5849d9d870a716dee"
OUT_DIR = "reference_pipeline"
MMAUDIO_SEED, ROFORMER_SEED, MLLM_SEED = 5, 0, 0
STEPS, DURATION, SEED, MLLM_TOKENS = 2, 1.0, 42, 12
CLIP_SECONDS = 1.2

PLAN_TEXT = (
    "Step1: Generate audio from video.\n"
    "Step2: Given a video and its generated audio, determine whether the audio contains voice-over.\n"
    "Step3: Remove voice-over from audio.\n"
    "Step4: Determine whether the audio is silent."
)


def verdict_text(letter: str) -> str:
    """A chain of thought in the fine-tuned model's format, ending in ``letter``."""
    return (
        "<SUMMARY>I describe the scene and the sound, then decide.</SUMMARY>\n"
        "<CAPTION>A street scene; the generated audio holds noise and a voice.</CAPTION>\n"
        "<REASONING>The voice matches nobody on screen.</REASONING>\n"
        f"<CONCLUSION>\n{letter}\n</CONCLUSION>"
    )


# source clip -> excerpt name; the excerpts (first CLIP_SECONDS s, video only) are the tests' inputs
CLIPS = {"aa.mp4": "vgg_voice", "1QBsc_IXg8U_000750.mp4": "vgg_plain", "silent_street_600x316.mp4": "street"}
# name: (clip, mode, postprocess, verdict letter, separator)
CASES: dict[str, tuple[str, str, str, str, str]] = {
    "s3": ("vgg_voice", "s3", "neg", "A", "seeded"),
    "s4_kept": ("street", "s4", "neg", "A", "seeded"),
    "s4_rm": ("vgg_plain", "s4", "rm", "A", "all_voice"),
    "s4_rep": ("vgg_plain", "s4", "rep", "A", "all_voice"),
    "s4_neg": ("vgg_voice", "s4", "neg", "A", "all_voice"),
    "no_voice_over": ("street", "s4", "neg", "B", "seeded"),
}
# the viperx layout at a small width (tools/goldens/bs_roformer.py's SMALL)
ROFORMER_SMALL = {
    "dim": 64,
    "depth": 2,
    "stereo": True,
    "num_stems": 1,
    "time_transformer_depth": 1,
    "freq_transformer_depth": 1,
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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--official", type=Path, required=True, help="checkout of GiantAILab/DeepSound-V1")
    parser.add_argument("--media", type=Path, default=ROOT.parent / "shared" / "media", help="real clips")


def all_voice(model: torch.nn.Module) -> torch.nn.Module:
    """Make every mask-estimator band output the mask 1 + 0j: the separator takes everything as voice.

    Works on any BS-RoFormer whose bands end in ``Linear -> GLU`` over interleaved real/imaginary
    values (the official class and ours share the layout and the parameter names).
    """
    with torch.no_grad():
        for estimator in model.mask_estimators:
            for band in estimator.to_freqs:
                last = [m for m in band.modules() if isinstance(m, torch.nn.Linear)][-1]
                half = last.out_features // 2
                last.weight.zero_()
                value = torch.zeros(half)
                value[0::2] = 1.0
                last.bias[:half] = value
                last.bias[half:] = 30.0
    return model


# ------------------------------------------------------------------------------ the reference, set up
class Reference:
    """The official pipeline with tiny seeded models; records every MLLM call and step timing."""

    def __init__(
        self,
        official: Path,
        workdir: Path,
        *,
        answers: dict[str, str] | None = None,
        full: Path | None = None,
    ) -> None:
        self.official = official
        self.answers = answers or {"step0": PLAN_TEXT, "step2": verdict_text("A")}
        self.mllm_calls: list[dict[str, Any]] = []
        self.timings: list[dict[str, Any]] = []
        for path in (str(official), str(official / "third_party" / "MMAudio")):
            if path not in sys.path:
                sys.path.append(path)
        self._patch_torchaudio()
        self._stub_videollama2(workdir)
        if full is None:
            self._patch_models()
        else:  # full size: the reference's own constructors on the files of _pipeline_full
            from goldens._pipeline_full import patch_full

            patch_full(full, STEPS)
        from pipeline.pipeline import Pipeline  # the official class

        wall, cpu = time.perf_counter(), time.process_time()
        self.pipeline = Pipeline(
            step0_model_dir=str(workdir / "vl2"),
            step1_mode="mmaudio_small_16k",
            step2_model_dir=str(workdir / "vl2"),
            step2_mode="cot",
            step3_mode="bs_roformer",
            device="cpu",
        )
        self.load = {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}  # its models
        self._time_steps()

    # -- substitutions (see the module docstring)
    @staticmethod
    def _patch_torchaudio() -> None:
        import soundfile as sf
        import torchaudio

        def save(path: str, tensor: torch.Tensor, sample_rate: int, **_: Any) -> None:
            sf.write(str(path), tensor.numpy().T, sample_rate, subtype="FLOAT")

        torchaudio.save = save

    def _stub_videollama2(self, workdir: Path) -> None:
        from functools import partial

        from goldens import videollama2 as vl2

        package = self.official / "third_party" / "VideoLLaMA2" / "videollama2"
        folder = workdir / "vl2"
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        code = (
            "import sys; sys.path.insert(0, sys.argv[2]);"
            "from pathlib import Path;"
            "from deepsound.testing.videollama2_checkpoint import write_tiny_checkpoint;"
            f"write_tiny_checkpoint(Path(sys.argv[1]), seed={MLLM_SEED})"
        )
        subprocess.run([_system_python(), "-c", code, str(folder), str(ROOT / "src")], check=True, env=env)
        off = vl2.import_official(package)
        outer = self

        def model_init(model_path: str, load_8bit: bool = False, load_4bit: bool = False, **_: Any):
            model, tokenizer, processor = vl2.load_official_tiny(off, Path(model_path))
            num_frames = getattr(model.config, "num_frames", 8)
            video = partial(
                off.mm_utils.process_video, processor=processor, aspect_ratio=None, num_frames=num_frames
            )
            return model, {"video": video}, tokenizer

        def mm_infer(media: Any, instruct: str, model: Any, tokenizer: Any, modal: str = "video", **_: Any):
            step = "step0" if instruct == vl2.STEP0_QUESTION else "step2"
            start = time.perf_counter()
            raw = vl2.official_answer(off, model, tokenizer, vl2.as_fp32(media), instruct, MLLM_TOKENS)
            outer.mllm_calls.append(
                {"step": step, "raw_text": raw["text"], "seconds": time.perf_counter() - start}
            )
            return outer.answers[step]

        stub = types.ModuleType("third_party.VideoLLaMA2.videollama2")
        stub.model_init, stub.mm_infer = model_init, mm_infer
        sys.modules["third_party.VideoLLaMA2.videollama2"] = stub

    def _patch_models(self) -> None:
        import v2a_models.v2a_mmaudio as v2a
        from pipeline import step3

        from deepsound.testing.equivalence import fill_seeded
        from goldens import _mmaudio_gen

        data = ROOT / "tests" / "data"
        outer = self

        def mmaudio_init(self: Any, variant: str = "large_44k", num_steps: int = 25, **_: Any) -> None:
            self.log = logging.getLogger("V2A_MMAudio")
            self.device, self.dtype = "cpu", torch.float32
            self.model = v2a.all_model_cfg[variant]
            utils, _, record = _mmaudio_gen._parts("16k", data)
            net = fill_seeded(_mmaudio_gen._network("16k").eval(), MMAUDIO_SEED)
            with torch.no_grad():
                net.latent_std.abs_().add_(0.5)
            self.net, self.feature_utils = net, utils
            self.fm = v2a.FlowMatching(min_sigma=0, inference_mode="euler", num_steps=STEPS)
            outer.mmaudio_record = record

        def step3_init(self: Any, model_type: str = "bs_roformer", device: Any = None) -> None:
            self.log = logging.getLogger("Step3")
            self.device, self.model_type = "cpu", model_type
            self.config = step3.load_config(
                model_type, str(ROOT / "src/deepsound/data/bs_roformer_viperx.yaml")
            )
            self.model = fill_seeded(step3.BSRoformer(**ROFORMER_SMALL).eval(), ROFORMER_SEED)
            self.sample_rate = getattr(self.config.audio, "sample_rate", 44100)

        v2a.V2A_MMAudio.__init__ = mmaudio_init
        step3.Step3.__init__ = step3_init

    def _time_steps(self) -> None:
        """Wrap each step object's ``run`` (instrumentation only): wall and CPU seconds per call."""
        p = self.pipeline
        owners = {"step0": p.step02, "step2": p.step02, "step1": p.step1, "step3": p.step3, "step4": p.step4}
        for name, (obj, attr) in {
            "step0": (owners["step0"], "run_step0"),
            "step1": (owners["step1"], "run"),
            "step2": (owners["step2"], "run_step2"),
            "step3": (owners["step3"], "run"),
            "step4": (owners["step4"], "run"),
        }.items():
            setattr(obj, attr, self._timed(name, getattr(obj, attr)))

    def _timed(self, name: str, fn: Any) -> Any:
        def run(*args: Any, **kwargs: Any) -> Any:
            wall, cpu = time.perf_counter(), time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                step = "neg" if name == "step1" and kwargs.get("is_postp") else name
                self.timings.append(
                    {"step": step, "wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}
                )

        return run

    def set_separator(self, kind: str) -> None:
        from deepsound.testing.equivalence import fill_seeded

        model = fill_seeded(self.pipeline.step3.model, ROFORMER_SEED)
        if kind == "all_voice":
            all_voice(model)

    def run(self, video: Path, out: Path, mode: str, postprocess: str) -> dict[str, Any]:
        """One clip through the official ``Pipeline.run`` plus ``demo.py``'s final copy."""
        self.mllm_calls, self.timings = [], []
        wall, cpu = time.perf_counter(), time.process_time()
        with torch.inference_mode():
            results = self.pipeline.run(
                video_input=str(video), output_dir=str(out), mode=mode, postp_mode=postprocess,
                prompt="", negative_prompt="", duration=DURATION, seed=SEED,
            )  # fmt: skip
        final = results.get("temp_final_audio_path")
        if final is not None:  # demo.py copies the final audio (and video) next to the inputs' names
            _copy(Path(final), out / f"{video.stem}.wav")
            if results.get("temp_final_video_path") is not None:
                _copy(Path(results["temp_final_video_path"]), out / f"{video.stem}.mp4")
        files = sorted(p for p in out.rglob("*") if p.is_file())
        return {
            "results": {k: (str(v) if isinstance(v, Path) else v) for k, v in results.items()},
            "wall": time.perf_counter() - wall,
            "cpu": time.process_time() - cpu,
            "timings": list(self.timings),
            "mllm_calls": list(self.mllm_calls),
            "files": {str(p.relative_to(out)): p.stat().st_size for p in files},
            "bytes_written": sum(p.stat().st_size for p in files),
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }


def _plain(value: Any) -> Any:
    """numpy booleans (the reference's ``is_silent``) as JSON booleans."""
    return None if value is None else bool(value)


def _copy(src: Path, dst: Path) -> None:
    dst.write_bytes(src.read_bytes())


def _system_python() -> str:
    """The interpreter that writes the tiny checkpoint, without PYTHONPATH: the project's own transformers."""
    return sys.executable


def _read(path: str | Path) -> torch.Tensor:
    import soundfile as sf

    wave, rate = sf.read(str(path), dtype="float32", always_2d=True)
    return torch.from_numpy(np.ascontiguousarray(wave.T)), rate


def cut_clips(media: Path, folder: Path) -> dict[str, Path]:
    """The first CLIP_SECONDS of each source clip, video only, re-encoded (the committed inputs)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for source, name in CLIPS.items():
        target = folder / f"{name}.mp4"
        subprocess.run(
            ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(media / source), "-t", str(CLIP_SECONDS),
             "-an", "-c:v", "libx264", "-preset", "veryfast", "-crf", "28", "-pix_fmt", "yuv420p",
             "-bitexact", "-map_metadata", "-1", str(target)],
            check=True,
        )  # fmt: skip
        out[name] = target
    return out


def main(args: argparse.Namespace) -> list[Path]:
    official = check_checkout(args.official, "pipeline/pipeline.py", COMMIT, "DeepSound-V1")
    out = Path(args.out) / OUT_DIR
    clips = cut_clips(Path(args.media), out / "clips")
    written = [Path(OUT_DIR) / "clips" / p.name for p in clips.values()]
    golden: dict[str, Any] = {"cases": {}}
    meta: dict[str, Any] = {
        "official": f"GiantAILab/DeepSound-V1 @ {COMMIT}",
        "settings": {"duration": DURATION, "seed": SEED, "num_steps": STEPS, "mllm_tokens": MLLM_TOKENS,
                     "mmaudio_seed": MMAUDIO_SEED, "roformer_seed": ROFORMER_SEED, "mllm_seed": MLLM_SEED,
                     "prompt": "", "negative_prompt": "", "cfg_strength": 4.5},
        "plan_text": PLAN_TEXT,
        "verdicts": {k: verdict_text(k) for k in "AB"},
        "cases": {},
    }  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        ref = Reference(official, Path(tmp))
        golden["mmaudio_record"] = ref.mmaudio_record
        for name, (clip, mode, post, letter, separator) in CASES.items():
            ref.answers["step2"] = verdict_text(letter)
            ref.set_separator(separator)
            run_dir = Path(tmp) / name
            info = ref.run(clips[clip], run_dir, mode, post)
            res = info["results"]
            case: dict[str, Any] = {"clip": clip, "mode": mode, "postprocess": post, "separator": separator}
            case["step1"], case["rate1"] = _read(res["step1_audio_path"])
            if "step3_audio_path" in res:
                case["step3"], case["rate3"] = _read(res["step3_audio_path"])
                stem = Path(res["step3_audio_path"]).name.replace(".step3.wav", "")
                if name == "s3":  # the separator's own output, for the module-level comparison
                    case["vocals"], _ = _read(run_dir / "remove_vo" / stem / "vocals.wav")
            final = res.get("temp_final_audio_path")
            case["final"] = None if final is None else _read(final)[0]
            case["final_source"] = None if final is None else Path(final).name
            if post == "neg" and res.get("is_silent"):
                case["neg"], _ = _read(run_dir / f"{clip}.neg.wav")
            golden["cases"][name] = case
            meta["cases"][name] = {
                **{k: case[k] for k in ("clip", "mode", "postprocess", "separator")},
                "verdict_letter": letter,
                "plan": PLAN_TEXT.splitlines(),
                "is_vo": _plain(res.get("is_vo")),
                "is_silent": _plain(res.get("is_silent")),
                "final_source": case["final_source"],
                "steps_run": [t["step"] for t in info["timings"]],
                "mllm_calls": info["mllm_calls"],
                "files": info["files"],
                "bytes_written": info["bytes_written"],
            }
            print(f"[{name}] steps {meta['cases'][name]['steps_run']} vo={res.get('is_vo')} "
                  f"silent={res.get('is_silent')} final={case['final_source']}", file=sys.stderr)  # fmt: skip
    target = out / "golden.pt"
    torch.save(golden, target)
    (out / "meta.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    return [*written, Path(OUT_DIR) / "golden.pt", Path(OUT_DIR) / "meta.json"]


# ------------------------------------------------------------------------------ the benchmark's side
def bench(argv: list[str]) -> None:
    """``bench --official DIR --clips A.mp4 B.mp4 ... [--mode s4 --postprocess neg --separator all_voice]``.

    Prints one JSON object: model-load seconds, then per clip the step timings, MLLM calls, bytes
    written, and the process's peak RSS (the reference holds every model for the whole run).
    """
    parser = argparse.ArgumentParser(prog="deepsound_pipeline.py bench")
    parser.add_argument("--official", type=Path, required=True)
    parser.add_argument("--clips", type=Path, nargs="+", required=True)
    parser.add_argument("--mode", default="s4")
    parser.add_argument("--postprocess", default="neg")
    parser.add_argument("--separator", default="all_voice")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--full", type=Path, help="a folder of full-size files from 'bench-weights'")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        ref = Reference(args.official.resolve(), Path(tmp), full=args.full and args.full.resolve())
        load = ref.load
        if args.full is None:  # the full-size files hold the separator already made all-voice
            ref.set_separator(args.separator)
        clips = []
        for index, clip in enumerate(args.clips):
            info = ref.run(clip, Path(tmp) / f"run{index}", args.mode, args.postprocess)
            info.pop("results")
            clips.append({"clip": clip.name, **info})
    print(json.dumps({"load": load, "clips": clips, "peak_rss_mib": clips[-1]["peak_rss_mib"]}))


if __name__ == "__main__":
    # run as a script, this folder is first on sys.path, where the mmaudio family would shadow the
    # official mmaudio package
    sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
    if len(sys.argv) > 1 and sys.argv[1] == "bench":
        bench(sys.argv[2:])
    elif len(sys.argv) == 4 and sys.argv[1] == "bench-weights":  # bench-weights OFFICIAL FOLDER
        from goldens._pipeline_full import write_weights

        print(json.dumps(write_weights(Path(sys.argv[2]).resolve(), Path(sys.argv[3]).resolve())))
    else:
        raise SystemExit("run through tools/make_goldens.py deepsound_pipeline, or 'bench'")
