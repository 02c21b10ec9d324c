"""LoRA fine-tuning of the pipeline's MLLM on the CoT-V2A data (:mod:`deepsound.dataset`).

:mod:`~deepsound.training.bases` wraps a model family behind one small interface,
:mod:`~deepsound.training.trainer` runs the loop (checkpoints, resume, held-out
evaluation), :mod:`~deepsound.training.adapter` saves, checks and applies adapters.
"""
