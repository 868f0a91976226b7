"""Helpers of the lightonml tests."""

import numpy as np


def random_bits(shape, seed=0, dtype=np.uint8):
    """0/1 values of ``shape`` (reproducible)."""
    return np.random.default_rng(seed).integers(0, 2, size=shape).astype(dtype)
