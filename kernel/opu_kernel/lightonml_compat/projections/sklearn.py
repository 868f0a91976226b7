"""``lightonml.projections.sklearn``: the scikit-learn ``OPUMap`` with lightonml's signature,
creating lightonml's ``OPU`` (``simulated=True``: lightonml's float32 simulator)."""

from ...projections import sklearn as _sklearn
from ..opu import OPU


class OPUMap(_sklearn.OPUMap):
    """opu_kernel's ``OPUMap`` (see its documentation) with lightonml's parameters.

    As in opu_kernel, the OPU is created by ``fit``; ``max_n_features`` may be left out with
    ``simulated=True`` (lightonml required it): the fitted input size is used.
    """

    _opu_class = OPU

    def __init__(self, n_components, opu=None, ndims=1, n_2d_features=None, packed=False,
                 simulated=False, max_n_features=None, verbose_level=-1, linear=False):
        super().__init__(n_components, opu=opu, ndims=ndims, n_2d_features=n_2d_features,
                         packed=packed, simulated=simulated, max_n_features=max_n_features,
                         verbose_level=verbose_level, linear=linear)
        # not parameters of this signature: the lightonml OPU's own defaults apply
        del self.seed, self.camera, self.disable_pbar
