"""Neural networks only, each matching a published checkpoint (names, shapes, numerics).

One sub-package per model family; step logic lives in :mod:`deepsound.steps`.
"""
