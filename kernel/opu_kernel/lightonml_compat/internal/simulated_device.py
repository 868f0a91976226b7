"""``lightonml.internal.simulated_device``: the simulated OPU device.

``OPU(opu_device=SimulatedOpuDevice())`` is lightonml's simulated OPU (as
``OPU(simulated=True)``): exact float32 |Hx|², H scaled by ``max_n_features``.
"""

from __future__ import annotations

import numpy as np

from ...backends.simulator import SimulatorBackend


class SimulatedOpuDevice(SimulatorBackend):
    """opu_kernel's simulator with lightonml's constructor and device attributes.

    ``frametime_us``, ``exposure_us`` and ``verbose`` are kept for API compatibility;
    ``linear=True`` makes ``transform1`` compute Re(Hx) instead of |Hx|².
    """

    def __init__(self, frametime_us=500, exposure_us=400, verbose=False, linear=False, *,
                 seed: int = 0, streaming="auto"):
        super().__init__(seed=seed, camera="exact", streaming=streaming)
        self.frametime_us = int(frametime_us)
        self.exposure_us = int(exposure_us)
        self._verbose = bool(verbose)
        self._linear = bool(linear)

    def build_random_matrix(self, n_features: int, n_components: int, seed=0) -> None:
        """Prepare H for (n_features × n_components) with ``seed`` (drawn on first use)."""
        self.seed = int(seed)
        self._matrix = None
        self._matrix_shape = None
        self.configure(int(n_features), int(n_components), scale_features=n_features)

    def reserve(self, _n_images) -> None:
        """The device reserves acquisition buffers; nothing to do for the simulator."""

    def transform1(self, X):
        """|XH|² (Re(XH) with ``linear``) of a 2D 0/1 batch, H as built."""
        X = np.asarray(X)
        if X.ndim != 2:
            raise ValueError(f"transform1 takes a 2D batch, got shape {X.shape}")
        if self._shape is None or X.shape[1] != self._shape[0]:
            raise ValueError(f"X must have {None if self._shape is None else self._shape[0]} "
                             "columns: call build_random_matrix(n_features, n_components) "
                             "first")
        return self.transform(X, linear=self._linear).output

    def transform_single(self, X):
        X = np.asarray(X)
        return self.transform1(X.reshape(1, -1))[0]
