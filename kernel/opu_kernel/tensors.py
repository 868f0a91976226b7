"""torch tensors in, torch tensors out: the one place that recognises a tensor and converts.

torch is an optional extra (``opu-kernel[torch]``): nothing here imports it unless a tensor was
given, so numpy users never pay for it.
"""

from __future__ import annotations

import numpy as np


def is_tensor(X) -> bool:
    """Whether ``X`` is a torch tensor (checked by its module: torch need not be imported)."""
    return type(X).__module__.split(".")[0] == "torch"


def to_numpy(X) -> np.ndarray:
    """A numpy view of ``X``; torch tensors are detached and moved to the CPU first."""
    if is_tensor(X):
        return X.detach().cpu().numpy()
    return np.asarray(X)


def to_torch(array: np.ndarray, like=None):
    """``array`` as a torch tensor (sharing memory when it can), on the device of the tensor
    ``like`` when one is given."""
    import torch

    tensor = torch.from_numpy(np.ascontiguousarray(array))
    return tensor if like is None else tensor.to(like.device)
