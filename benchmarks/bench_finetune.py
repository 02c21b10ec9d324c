"""Seconds per LoRA fine-tuning step and peak memory of the Qwen2.5-Omni-7B thinker (random weights).

One step = encode one step-2 chain-of-thought sample exactly as ``deepsound finetune``
does (frames + the audio as soundtrack + the judge's system prompt + the target
answer), forward, backward, AdamW step. The full-size thinker is built from
transformers' default ``Qwen2_5OmniThinkerConfig`` (text width 3584, 28 layers;
11.4 B parameters built this way, not checked against the published
``config.json``, which cannot be downloaded here) with random weights in
bfloat16 on CUDA with gradient checkpointing, as the trainer runs it; speed
and memory do not depend on the weight values. LoRA r=16 on the LLM is 40.4 M
trainable parameters. The tokenizer is the
tiny byte-level one (the published tokenizer cannot be downloaded here), so the
text part is longer in tokens than with the real vocabulary (an upper bound).
``--size tiny`` runs the same path on the tiny configuration (a CPU smoke run).

    python benchmarks/bench_finetune.py --device cuda --seconds 8 --steps 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np


def _clip(path: Path, seconds: float) -> Path:
    import av

    rate, fps = 16_000, 10
    with av.open(str(path), "w") as out:
        video = out.add_stream("mpeg4", rate=fps)
        video.width, video.height, video.pix_fmt = 640, 360, "yuv420p"
        audio = out.add_stream("aac", rate=rate)
        audio.layout = "mono"
        rng = np.random.default_rng(0)
        for _ in range(int(seconds * fps)):
            pixels = rng.integers(0, 255, (360, 640, 3), dtype=np.uint8)
            for packet in video.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                out.mux(packet)
        noise = (0.05 * rng.standard_normal(int(seconds * rate))).astype(np.float32)
        for start in range(0, noise.size, 1024):
            frame = av.AudioFrame.from_ndarray(
                noise[None, start : start + 1024], format="fltp", layout="mono"
            )
            frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
            for packet in audio.encode(frame):
                out.mux(packet)
        for stream in (video, audio):
            for packet in stream.encode(None):
                out.mux(packet)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--size", choices=("full", "tiny"), default="full")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--lora-r", type=int, default=16)
    args = parser.parse_args()

    import peft
    import torch
    import transformers

    from deepsound.dataset.cot import cot_answer
    from deepsound.dataset.evidence import label_clip
    from deepsound.dataset.manifest import Sample
    from deepsound.interfaces import SpeechReport
    from deepsound.models.qwen_omni import reasoner as omni
    from deepsound.steps.prompts import VOICE_OVER_QUESTION, VOICE_OVER_SYSTEM_PROMPT
    from deepsound.testing import tiny as toy
    from deepsound.training.bases import OmniBase

    cuda = args.device.startswith("cuda")
    dtype = torch.bfloat16 if cuda else torch.float32
    processor = toy._tiny_processor()
    tiny = toy._tiny_thinker_config(processor.tokenizer)
    if args.size == "full":
        tokens = {
            k: getattr(tiny, k) for k in ("audio_token_index", "image_token_index", "video_token_index")
        }
        tokens.update({k: getattr(tiny, k) for k in ("audio_start_token_id", "audio_end_token_id")})
        tokens.update({k: getattr(tiny, k) for k in ("vision_start_token_id", "vision_end_token_id")})
        config = transformers.Qwen2_5OmniThinkerConfig(**tokens, user_token_id=tiny.user_token_id)
    else:
        config = tiny
    torch.set_default_dtype(dtype)
    with torch.device(args.device):
        model = transformers.Qwen2_5OmniThinkerForConditionalGeneration(config)
    torch.set_default_dtype(torch.float32)
    model.train()
    reasoner = omni.OmniReasoner(model, processor, model_id=f"random Qwen2.5-Omni thinker ({args.size})")
    base = OmniBase(reasoner)
    if cuda:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    lora = peft.LoraConfig(
        r=args.lora_r, lora_alpha=2 * args.lora_r, lora_dropout=0.05,
        target_modules=base.lora_targets(projectors=False, towers=False),
    )  # fmt: skip
    wrapped = peft.get_peft_model(model, lora)
    params = [p for p in wrapped.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=2e-4)

    with tempfile.TemporaryDirectory() as tmp:
        video = _clip(Path(tmp) / "clip.mp4", args.seconds)
        from deepsound.media import read_audio, write_audio

        write_audio(Path(tmp) / "gen.wav", read_audio(video))
        report = SpeechReport([(0.5, args.seconds - 0.5)], (args.seconds - 1) / args.seconds, args.seconds)
        answer = cot_answer(label_clip(report, SpeechReport([], 0.0, args.seconds)))
        sample = Sample("b/step2_cot", "b", "step2_cot", video, Path(tmp) / "gen.wav", VOICE_OVER_QUESTION,
                        answer, VOICE_OVER_SYSTEM_PROMPT, "A")  # fmt: skip
        times, length = [], 0
        for _ in range(args.steps):
            if cuda:
                torch.cuda.synchronize()
            started = time.perf_counter()
            inputs = base.encode(sample)
            length = int(inputs["input_ids"].shape[1])
            base.loss(inputs).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if cuda:
                torch.cuda.synchronize()
            times.append(time.perf_counter() - started)
    peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan")
    total = sum(p.numel() for p in wrapped.parameters())
    print("| size | device | dtype | tokens | LoRA params | all params | s/step (median, first) | peak GiB |")
    print("|---|---|---|---|---|---|---|---|")
    print(f"| {args.size} | {args.device} | {str(dtype).replace('torch.', '')} | {length} | "
          f"{sum(p.numel() for p in params):,} | {total:,} | {statistics.median(times):.3f}, {times[0]:.3f} | "
          f"{peak:.1f} |")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
