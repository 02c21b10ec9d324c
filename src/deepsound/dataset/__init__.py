"""Annotation-free CoT-V2A data: step-1 audio labelled from measured evidence, written as conversations.

:mod:`~deepsound.dataset.evidence` measures and labels, :mod:`~deepsound.dataset.cot`
writes the answers, :mod:`~deepsound.dataset.manifest` reads and writes the JSONL
the fine-tuning reads, :mod:`~deepsound.dataset.builder` runs it over a folder.
"""
