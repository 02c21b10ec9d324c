"""VideoLLaMA2 on the CPU at small size: load time and generation speed, ours beside the official code.

Usage:
  python benchmarks/bench_videollama2.py [--official DIR --official-pythonpath TF442_DIR]
        [--hidden 256 --layers 4 --tokens 32 --clip VIDEO]

Both sides load the same small official-format checkpoint folder (random
weights, written by ``write_tiny_checkpoint``) and answer the paper's step-2
question on the same clip with its audio, greedy, a fixed number of new
tokens. The official side runs in a child process on the transformers
version it pins (``--official-pythonpath``: a folder holding transformers
4.42.3; see tools/goldens/videollama2.py). Input preparation (decode,
resize, fbank) is timed separately from generation.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
STEP2 = (
    "Given a video and its corresponding audio, determine whether the audio contains voice-over? "
    "Options: A. Yes, B. No. Choose A or B."
)


def ours(folder: Path, clip: Path, tokens: int) -> dict:
    from deepsound.models.videollama2 import inputs
    from deepsound.models.videollama2.reasoner import VideoLlamaSettings, load_chat

    started = time.perf_counter()
    chat = load_chat(folder, VideoLlamaSettings(cot_model=str(folder), device="cpu"))
    load = time.perf_counter() - started
    started = time.perf_counter()
    pixels, fbank, _ = chat.media(clip, inputs.decode_audio(clip), with_audio=True)
    prep = time.perf_counter() - started
    chat.answer(STEP2, pixels, fbank, max_new_tokens=2)  # warm-up
    started = time.perf_counter()
    reply = chat.answer(STEP2, pixels, fbank, max_new_tokens=tokens)
    gen = time.perf_counter() - started
    return {
        "load_s": load,
        "inputs_s": prep,
        "generate_s": gen,
        "new_tokens": len(reply.token_ids),
        "ids": reply.token_ids,
    }


def official(package: Path, folder: Path, clip: Path, tokens: int) -> dict:
    sys.path.insert(0, str(ROOT / "tools" / "goldens"))
    import videollama2 as goldens

    off = goldens.import_official(package)
    started = time.perf_counter()
    model, tokenizer, processor = goldens.load_official_tiny(off, folder)
    load = time.perf_counter() - started
    started = time.perf_counter()
    media = off.mm_utils.process_video(
        str(clip), processor, aspect_ratio=None, num_frames=model.config.num_frames, va=True
    )
    prep = time.perf_counter() - started
    media = goldens.as_fp32(media)
    goldens.official_answer(off, model, tokenizer, media, STEP2, 2)
    started = time.perf_counter()
    answer = goldens.official_answer(off, model, tokenizer, media, STEP2, tokens)
    gen = time.perf_counter() - started  # includes one extra forward for the goldens' logits
    return {
        "load_s": load,
        "inputs_s": prep,
        "generate_s": gen,
        "new_tokens": int(answer["ids"].numel()),
        "ids": answer["ids"].tolist(),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--official", type=Path)
    parser.add_argument("--official-pythonpath", type=Path)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=32)
    clips = [root / "shared" / "media" / "aa.mp4" for root in (ROOT.parent, ROOT.parent.parent)]
    parser.add_argument("--clip", type=Path, default=next((c for c in clips if c.is_file()), clips[0]))
    parser.add_argument("--role", choices=("main", "official"), default="main")
    parser.add_argument("--folder", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.role == "official":
        print(json.dumps(official(args.official, args.folder, args.clip, args.tokens)))
        return

    from deepsound.models.videollama2.tiny import write_tiny_checkpoint

    with tempfile.TemporaryDirectory() as tmp:
        folder = write_tiny_checkpoint(
            Path(tmp) / "small", hidden=args.hidden, layers=args.layers, num_frames=16
        )
        rows = {"ours": ours(folder, args.clip, args.tokens)}
        if args.official is not None:
            env = dict(os.environ)
            if args.official_pythonpath is not None:
                env["PYTHONPATH"] = str(args.official_pythonpath)
            command = [sys.executable, __file__, "--role", "official", "--official", str(args.official),
                       "--folder", str(folder), "--clip", str(args.clip), "--tokens", str(args.tokens)]  # fmt: skip
            out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
            rows["official"] = json.loads(out.strip().splitlines()[-1])
    print(
        f"VideoLLaMA2 small (hidden {args.hidden}, {args.layers} layers, 16 frames + audio), CPU, 1 thread, {args.tokens} new tokens"
    )
    print(f"{'':10}{'load s':>9}{'inputs s':>10}{'generate s':>12}{'tokens/s':>10}")
    for name, row in rows.items():
        rate = row["new_tokens"] / row["generate_s"]
        print(f"{name:10}{row['load_s']:9.2f}{row['inputs_s']:10.2f}{row['generate_s']:12.2f}{rate:10.1f}")
    if "official" in rows:
        a, b = rows["ours"], rows["official"]
        print(
            f"{'ratio':10}{a['load_s'] / b['load_s']:9.2f}{a['inputs_s'] / b['inputs_s']:10.2f}{a['generate_s'] / b['generate_s']:12.2f}"
        )
        print("same token ids:", a["ids"] == b["ids"])


if __name__ == "__main__":
    main()
