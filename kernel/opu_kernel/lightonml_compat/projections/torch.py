"""``lightonml.projections.torch``: the PyTorch ``OPUMap`` with lightonml's signature,
creating lightonml's ``OPU`` (``simulated=True``: lightonml's float32 simulator)."""

from ...projections import torch as _torch
from ..opu import OPU


class OPUMap(_torch.OPUMap):
    """opu_kernel's torch ``OPUMap`` (see its documentation) with lightonml's parameters."""

    _opu_class = OPU

    def __init__(self, n_components, opu=None, ndims=1, n_2d_features=None, packed=False,
                 simulated=False, max_n_features=None, verbose_level=-1, linear=False):
        super().__init__(n_components, opu=opu, ndims=ndims, n_2d_features=n_2d_features,
                         packed=packed, simulated=simulated, max_n_features=max_n_features,
                         verbose_level=verbose_level, linear=linear, seed=None, camera=None)
