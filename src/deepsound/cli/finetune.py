"""``deepsound finetune DATA --base … -o ADAPTER``: LoRA fine-tuning of the MLLM on a built dataset.

``--merge ADAPTER -o FOLDER`` instead writes the base with the adapter merged
in, as a checkpoint folder that ``--mllm-model`` loads like any other.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def finetune_command(
    data: Annotated[Path | None, typer.Argument(help="Dataset folder or its manifest.jsonl.")] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Adapter folder (or merged folder).")
    ] = None,
    base: Annotated[str, typer.Option(help="videollama2-cot, videollama2 or qwen-omni.")] = "qwen-omni",
    base_model: Annotated[
        str | None, typer.Option(help="Hub id or local folder of the base (default: the family's).")
    ] = None,
    tasks: Annotated[
        str, typer.Option(help="Sample tasks to train on: step0_plan, step2_cot, step2_qa.")
    ] = "step0_plan,step2_cot,step2_qa",
    lora_r: Annotated[int, typer.Option(help="LoRA rank.")] = 16,
    lora_alpha: Annotated[int | None, typer.Option(help="LoRA alpha (default 2 x rank).")] = None,
    lora_dropout: Annotated[float, typer.Option(help="LoRA dropout.")] = 0.05,
    epochs: Annotated[int, typer.Option(help="Passes over the training split.")] = 1,
    lr: Annotated[float, typer.Option(help="Peak learning rate (cosine schedule with warm-up).")] = 2e-4,
    grad_accum: Annotated[int, typer.Option(help="Samples per optimizer step.")] = 1,
    warmup_ratio: Annotated[float, typer.Option(help="Share of the steps spent warming the rate up.")] = 0.03,
    held_out: Annotated[float, typer.Option(help="Share of clips held out for evaluation.")] = 0.1,
    projectors: Annotated[bool, typer.Option(help="Also adapt the audio/vision projectors.")] = False,
    towers: Annotated[bool, typer.Option(help="Also adapt the audio and vision encoders.")] = False,
    checkpoint_every: Annotated[
        int, typer.Option(help="Optimizer steps between checkpoints (0: each epoch).")
    ] = 0,
    max_new_tokens: Annotated[int, typer.Option(help="Token budget of evaluation answers.")] = 512,
    seed: Annotated[int, typer.Option(help="Split and shuffling seed.")] = 0,
    max_frames: Annotated[
        int | None, typer.Option(help="Frames the MLLM sees per clip (default: its own).")
    ] = None,
    max_pixels: Annotated[
        int | None, typer.Option(help="Pixel budget per frame (default: the MLLM's).")
    ] = None,
    min_pixels: Annotated[int | None, typer.Option(help="Smallest pixel budget per frame.")] = None,
    resume: Annotated[
        bool, typer.Option(help="Continue the run in --output from its last checkpoint.")
    ] = False,
    merge: Annotated[
        Path | None, typer.Option(help="Merge this adapter into its base and write the model to --output.")
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:1 …")] = "auto",
    offline: Annotated[bool, typer.Option(help="Never download; fail with a clear message instead.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only warnings and errors.")] = False,
) -> None:
    """Fine-tune the MLLM with LoRA on DATA; evaluate the held-out clips after each epoch."""
    import json

    from rich.console import Console

    from deepsound.cli.app import setup_logging
    from deepsound.errors import ConfigError
    from deepsound.weights.loading import resolve_device

    setup_logging(quiet)
    if output is None:
        raise ConfigError("--output / -o is required (the adapter folder, or the merged model folder)")
    resolved = resolve_device(device)
    dtype = "bfloat16" if resolved.startswith("cuda") else "float32"
    if merge is not None:
        from deepsound.training.merge import merge_adapter

        folder = merge_adapter(
            merge, output, base_model=base_model, device=resolved, dtype=dtype, offline=offline
        )
        Console().print(f"merged model: {folder}", highlight=False, markup=False)
        return
    if data is None:
        raise ConfigError("give the dataset (folder or manifest.jsonl), or --merge ADAPTER")

    from deepsound.dataset.manifest import TASKS, read_manifest
    from deepsound.training.bases import load_base
    from deepsound.training.trainer import FinetuneSettings, Trainer

    chosen = tuple(t.strip() for t in tasks.split(",") if t.strip())
    unknown = [t for t in chosen if t not in TASKS]
    if unknown or not chosen:
        raise ConfigError(f"unknown task(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(TASKS)}")
    samples = read_manifest(data, chosen)  # every line checked before any model loads
    settings = FinetuneSettings(
        lora_r=lora_r, lora_alpha=lora_alpha, lora_dropout=lora_dropout, epochs=epochs, lr=lr,
        grad_accum=grad_accum, warmup_ratio=warmup_ratio, held_out=held_out, seed=seed, projectors=projectors, towers=towers,
        checkpoint_every=checkpoint_every, max_new_tokens=max_new_tokens,
    )  # fmt: skip
    trainable = load_base(
        base, base_model, device=resolved, dtype=dtype, offline=offline,
        max_frames=max_frames, max_pixels=max_pixels, min_pixels=min_pixels,
    )  # fmt: skip
    result = Trainer(trainable, samples, settings).run(output, resume=resume)
    out = Console()
    for metrics in result["history"]:
        out.print(
            json.dumps({k: v for k, v in metrics.items() if k != "answers"}),
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
    out.print(f"adapter: {output}", highlight=False, markup=False)
