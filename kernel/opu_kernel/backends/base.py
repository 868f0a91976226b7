"""What every backend offers the OPU proxy."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Acquisition:
    """One transform's raw result and the device facts that go into the output's context."""

    output: np.ndarray
    exposure_us: float | None = None
    frametime_us: float | None = None
    saturated: float | None = None
    extra: dict = field(default_factory=dict)


class Backend:
    """Interface of a backend. ``name`` is ``"simulator"`` or ``"hardware"``."""

    name = "base"

    def open(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    @property
    def is_open(self) -> bool:
        raise NotImplementedError

    def configure(self, n_features: int, n_components: int, ones_fraction: float | None,
                  **override) -> None:
        """Prepare for inputs of ``n_features``; ``ones_fraction`` is the typical fraction of
        ones in an input (from the fit data), used for exposure; ``override`` holds lightonml's
        advanced settings such as ``exposure_us``."""
        raise NotImplementedError

    def transform(self, X: np.ndarray, linear: bool, progress=None) -> Acquisition:
        """Project the 2D binary batch ``X`` (float32 or uint8, rows × n_features)."""
        raise NotImplementedError

    #: Shape of the input device in pixels (LightOn's: 1140 × 912), and of its camera.
    input_shape = (1140, 912)
    output_shape_max = (1920, 1080)

    @property
    def active(self) -> bool:
        """lightonml's name for ``is_open``."""
        return self.is_open

    def describe(self) -> dict:
        """Facts for ``%opu`` and reprs: at least backend and device."""
        return {"backend": self.name}

    def version(self) -> dict:
        return {}
