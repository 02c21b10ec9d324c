"""The fine-tuning loop: LoRA (peft) on the LLM, checkpoints, resume, a held-out split evaluated each epoch.

One sample per forward pass: the samples are multimodal with very different
lengths (frames x audio chunks x chain of thought), so padding them into a batch
wastes most of it; ``grad_accum`` gives the effective batch size instead. On
CUDA the base runs in bfloat16 with gradient checkpointing (a 7B thinker's
activations would not fit otherwise); on the CPU everything is float32. The
LoRA weights stay float32 either way (peft's adapter autocast).

The split is by clip, never by sample (a clip's CoT and QA samples share their
audio, so splitting samples would leak answers), and stratified by label so
that the held-out accuracy has a meaningful chance level beside it.

A run folder holds ``run.json`` (settings, base id and checksum), ``metrics.jsonl``
(one line per epoch), ``checkpoints/step-N/`` (adapter + optimizer/scheduler/RNG
state; the last two are kept) and, at the end, the adapter itself.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from deepsound.dataset.manifest import Sample
from deepsound.errors import ConfigError
from deepsound.files import write_json
from deepsound.training.adapter import save_adapter, weights_fingerprint
from deepsound.training.evaluation import evaluate

log = logging.getLogger(__name__)


@dataclass
class FinetuneSettings:
    lora_r: int = 16
    lora_alpha: int | None = None  # default 2 * r
    lora_dropout: float = 0.05
    epochs: int = 1
    lr: float = 2e-4
    weight_decay: float = 0.0
    warmup_ratio: float = 0.03
    grad_accum: int = 1
    max_grad_norm: float = 1.0
    held_out: float = 0.1  # share of clips kept out of training
    seed: int = 0
    projectors: bool = False  # LoRA also on the audio/vision projectors
    towers: bool = False  # LoRA also inside the audio and vision encoders
    gradient_checkpointing: bool | None = None  # None: on CUDA only
    checkpoint_every: int = 0  # optimizer steps between checkpoints (0: at each epoch's end)
    keep_checkpoints: int = 2
    max_new_tokens: int = 512  # evaluation answers (each is also capped at its target's length + 8)
    cache_samples: int = 64  # encoded inputs are kept in memory when the dataset is at most this large

    def __post_init__(self) -> None:
        if self.lora_r < 1 or self.epochs < 1 or self.grad_accum < 1:
            raise ConfigError("--lora-r, --epochs and --grad-accum must be at least 1")
        if not self.lr > 0:
            raise ConfigError(f"--lr must be positive, got {self.lr}")
        if not 0 <= self.held_out < 1:
            raise ConfigError(f"--held-out must lie in [0, 1), got {self.held_out}")


def _clip_label(samples: list[Sample]) -> str:
    return next((s.label for s in samples if s.label is not None), "-")


def _split_key(clip: str, seed: int) -> str:
    """Rank clips by name (the id without its content hash), so a re-encoded copy keeps its side."""
    name = clip.rsplit("-", 1)[0] if "-" in clip else clip
    return hashlib.sha1(f"{seed}:{name}".encode()).hexdigest()


def split_samples(samples: list[Sample], held_out: float, seed: int = 0) -> tuple[list[Sample], list[Sample]]:
    """(train, held-out) by clip, stratified by label; at least one clip per label held out when possible."""
    by_clip: dict[str, list[Sample]] = {}
    for sample in samples:
        by_clip.setdefault(sample.clip, []).append(sample)
    strata: dict[str, list[str]] = {}
    for clip, members in by_clip.items():
        strata.setdefault(_clip_label(members), []).append(clip)
    held: set[str] = set()
    if held_out > 0:
        for clips in strata.values():
            ranked = sorted(clips, key=lambda c: (_split_key(c, seed), c))
            count = round(len(ranked) * held_out)
            if count == 0 and len(ranked) >= 2:
                count = 1
            held.update(ranked[:count])
    train = [s for s in samples if s.clip not in held]
    test = [s for s in samples if s.clip in held]
    if not train:
        raise ConfigError("the held-out split leaves no training samples; lower --held-out or add clips")
    return train, test


class Trainer:
    """Fine-tunes ``base`` (a :class:`~deepsound.training.bases.TrainableBase`) on ``samples``."""

    def __init__(self, base: Any, samples: list[Sample], settings: FinetuneSettings | None = None) -> None:
        self.base = base
        self.settings = settings or FinetuneSettings()
        self.train_set, self.eval_set = split_samples(samples, self.settings.held_out, self.settings.seed)
        self.base_checksum = weights_fingerprint(base.model)  # before any LoRA layer exists
        self.peft_model: Any = None
        self._cache: dict[str, dict[str, Any]] | None = (
            {} if len(samples) <= self.settings.cache_samples else None
        )

    def encode(self, sample: Sample) -> dict[str, Any]:
        """The sample's tensors; small datasets keep them (decoding frames and audio each epoch dominates)."""
        if self._cache is None:
            return self.base.encode(sample)
        if sample.id not in self._cache:
            self._cache[sample.id] = self.base.encode(sample)
        return self._cache[sample.id]

    # ------------------------------------------------------------------ setup
    def _wrap(self) -> None:
        import peft

        s = self.settings
        model = self.base.model
        device = next(model.parameters()).device
        checkpointing = (
            s.gradient_checkpointing if s.gradient_checkpointing is not None else device.type == "cuda"
        )
        if checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            model.config.use_cache = False
        config = peft.LoraConfig(
            r=s.lora_r,
            lora_alpha=s.lora_alpha or 2 * s.lora_r,
            lora_dropout=s.lora_dropout,
            target_modules=self.base.lora_targets(projectors=s.projectors, towers=s.towers),
        )
        self.peft_model = peft.get_peft_model(model, config)
        self.peft_model.train()
        self.checkpointing = checkpointing

    def describe(self) -> dict[str, Any]:
        trainable = sum(p.numel() for p in self.peft_model.parameters() if p.requires_grad)
        total = sum(p.numel() for p in self.peft_model.parameters())
        return {
            "base_model": self.base.model_id,
            "base_checksum": self.base_checksum,
            "settings": asdict(self.settings),
            "train_samples": len(self.train_set),
            "eval_samples": len(self.eval_set),
            "eval_clips": sorted({s.clip for s in self.eval_set}),
            "trainable_parameters": trainable,
            "total_parameters": total,
            "gradient_checkpointing": self.checkpointing,
            "dtype": str(next(self.base.model.parameters()).dtype).replace("torch.", ""),
            "inputs": self.base.input_settings() if hasattr(self.base, "input_settings") else {},
        }

    # ------------------------------------------------------------------ the run
    def run(self, output: Path, *, resume: bool = False, on_step: Any = None) -> dict[str, Any]:
        import torch
        import transformers

        output = Path(output)
        run_file = output / "run.json"
        if run_file.is_file() and not resume:
            raise ConfigError(
                f"{output}: already holds a fine-tuning run; pass --resume or choose another folder"
            )
        self._wrap()
        s = self.settings
        params = [p for p in self.peft_model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=s.lr, weight_decay=s.weight_decay)
        steps_per_epoch = max(1, -(-len(self.train_set) // s.grad_accum))
        total_steps = steps_per_epoch * s.epochs
        scheduler = transformers.get_cosine_schedule_with_warmup(
            optimizer, int(s.warmup_ratio * total_steps), total_steps
        )
        state = {"epoch": 0, "position": 0, "step": 0, "history": [], "losses": []}
        description = self.describe()
        if resume and run_file.is_file():
            self._check_resumable(json.loads(run_file.read_text(encoding="utf-8")), output)
            state = self._restore(output, optimizer, scheduler) or state
        output.mkdir(parents=True, exist_ok=True)
        write_json(run_file, description)
        started = time.perf_counter()

        while state["epoch"] < s.epochs:
            order = list(range(len(self.train_set)))
            random.Random(s.seed * 1000 + state["epoch"]).shuffle(order)
            position = state["position"]
            optimizer.zero_grad(set_to_none=True)
            for index in order[position:]:
                loss = self.base.loss(self.encode(self.train_set[index]))
                (loss / s.grad_accum).backward()
                state["losses"].append(float(loss.detach()))
                position += 1
                if position % s.grad_accum == 0 or position == len(order):
                    torch.nn.utils.clip_grad_norm_(params, s.max_grad_norm)
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad(set_to_none=True)
                    state["step"] += 1
                    state["position"] = position
                    if on_step is not None:
                        on_step(state["step"], total_steps, float(loss))
                    if s.checkpoint_every and state["step"] % s.checkpoint_every == 0:
                        self._checkpoint(output, optimizer, scheduler, state)
            epoch_losses = state["losses"]
            metrics = {"epoch": state["epoch"] + 1, "step": state["step"]}
            metrics["train_loss"] = round(sum(epoch_losses) / len(epoch_losses), 5) if epoch_losses else None
            if self.eval_set:
                metrics.update(
                    evaluate(self.base, self.eval_set, max_new_tokens=s.max_new_tokens, encode=self.encode)
                )
            metrics["seconds"] = round(time.perf_counter() - started, 3)
            log.info("epoch %d: %s", metrics["epoch"], {k: v for k, v in metrics.items() if k != "answers"})
            state["history"].append(metrics)
            state.update(epoch=state["epoch"] + 1, position=0, losses=[])
            self._write_metrics(output, state["history"])
            self._checkpoint(output, optimizer, scheduler, state)

        info = {**description, "metrics": [_brief(m) for m in state["history"]]}
        save_adapter(self.peft_model, output, info)
        return {"output": str(output), "history": state["history"], **description}

    # ------------------------------------------------------------------ checkpoints
    def _check_resumable(self, previous: dict[str, Any], output: Path) -> None:
        if previous.get("base_checksum") != self.base_checksum:
            raise ConfigError(
                f"{output}: was started on {previous.get('base_model')} (checksum "
                f"{str(previous.get('base_checksum'))[:12]}), not on {self.base.model_id}; resume with the same base"
            )
        if previous.get("eval_clips") != sorted({s.clip for s in self.eval_set}):
            raise ConfigError(
                f"{output}: the dataset or split changed since this run started; resume needs the same"
            )

    def _checkpoint(self, output: Path, optimizer: Any, scheduler: Any, state: dict[str, Any]) -> None:
        import torch

        folder = output / "checkpoints" / f"step-{state['step']:07d}"
        partial = folder.with_name(folder.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        self.peft_model.save_pretrained(str(partial))
        torch.save(
            {
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "state": state,
            },
            partial / "trainer_state.pt",
        )
        shutil.rmtree(folder, ignore_errors=True)
        partial.rename(folder)  # a checkpoint exists whole or not at all
        kept = sorted(p for p in folder.parent.iterdir() if p.is_dir() and not p.name.endswith(".partial"))
        for old in kept[: -max(1, self.settings.keep_checkpoints)]:
            shutil.rmtree(old, ignore_errors=True)

    def _restore(self, output: Path, optimizer: Any, scheduler: Any) -> dict[str, Any] | None:
        import peft
        import torch

        folders = sorted(
            p
            for p in (output / "checkpoints").glob("step-*")
            if p.is_dir() and not p.name.endswith(".partial")
        )
        if not folders:
            log.info("%s: no checkpoint yet; starting from the beginning", output)
            return None
        latest = folders[-1]
        weights = peft.utils.load_peft_weights(
            str(latest), device=str(next(self.peft_model.parameters()).device)
        )
        peft.set_peft_model_state_dict(self.peft_model, weights)
        saved = torch.load(latest / "trainer_state.pt", map_location="cpu", weights_only=True)
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        torch.set_rng_state(saved["torch_rng"])
        log.info(
            "resumed from %s (epoch %d, step %d)", latest, saved["state"]["epoch"], saved["state"]["step"]
        )
        return saved["state"]

    @staticmethod
    def _write_metrics(output: Path, history: list[dict[str, Any]]) -> None:
        from deepsound.files import atomic_output

        with atomic_output(output / "metrics.jsonl") as tmp:
            tmp.write_text("".join(json.dumps(_brief(m)) + "\n" for m in history), encoding="utf-8")
        write_json(output / "eval_answers.json", history[-1].get("answers", []))


def _brief(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if k != "answers"}
