"""``lightonml.opu``: the ``OPU`` class as lightonml 1.4.3 behaves.

It is opu_kernel's ``OPU`` with lightonml's results where the two differ (the table in
kernel/README.md, "lightonml compatibility"):

- ``OPU(simulated=True)`` (or ``opu_device=SimulatedOpuDevice()``) is lightonml's simulator:
  float32 |Hx|² (``camera="exact"``), H with entries of variance 1/``max_n_features`` per
  part, so outputs and ``linear_transform`` scale with ``max_n_features`` as in lightonml;
  inputs up to ``max_n_features`` features.
- ``OPU()`` stands for the device. With one attached it is the hardware; without one, our
  simulator answers *as the device would*: uint8 camera counts (LightOn's notebooks show
  uint8 outputs from such calls) and inputs up to the input device's 1140 × 912 features
  (``max_n_features`` is the device's, read-only, as in lightonml). Said once in a log line.
- ``fit1d``/``fit2d`` on a real-valued sample use only its shape, as lightonml does.

Everything else (transform before fit raises an error that is both ``AssertionError``, as
lightonml's, and ``RuntimeError``; rescale given as a string) is shared with opu_kernel.
"""

from __future__ import annotations

import logging

import numpy as np

from .. import opu as _opu
from ..backends.simulator import SimulatorBackend
from ..encoding.base import NoDecoding, NoEncoding  # noqa: F401 - lightonml.opu has them
from ..types import InputRoiStrategy, OutputRescaling

log = logging.getLogger("opu_kernel")

#: Features the input device takes (LightOn's: 1140 × 912 pixels).
DEVICE_INPUT_SHAPE = (1140, 912)
_told_standing_in = False


class OPU(_opu.OPU):
    """lightonml's ``OPU`` (see the module doc); opu_kernel's keywords (``seed``, ``camera``,
    ``camera_noise``, ``streaming``, ``backend``) are accepted too."""

    def __init__(self, n_components: int = 200000, opu_device=None,
                 max_n_features: int = 1000, config_file: str = "",
                 config_override: dict | None = None, verbose_level: int = -1,
                 input_roi_strategy=InputRoiStrategy.full, open_at_init: bool | None = None,
                 disable_pbar: bool = False, simulated: bool = False,
                 rescale=OutputRescaling.variance, **options):
        if simulated and opu_device is not None:
            raise ValueError("simulated and opu_device arguments are conflicting")
        if verbose_level != -1:
            from . import set_verbose_level

            set_verbose_level(verbose_level)
            verbose_level = -1  # applied here; lightonml's deprecation warning below
            import warnings

            warnings.warn("verbose_level is deprecated: use lightonml.set_verbose_level()",
                          DeprecationWarning, stacklevel=2)
        self._lightonml_simulated = bool(simulated) or (
            isinstance(opu_device, SimulatorBackend)
            and options.get("backend") in (None, "simulator"))
        options.setdefault("camera", "exact" if self._lightonml_simulated else "8bit")
        super().__init__(n_components, opu_device, max_n_features, config_file,
                         config_override, verbose_level, input_roi_strategy, open_at_init,
                         disable_pbar, simulated, rescale, **options)
        if not self._lightonml_simulated and self.simulated:
            _tell_standing_in()

    # -- max_n_features: lightonml's simulator takes the given one, the device its own ------
    @property
    def stands_for_device(self) -> bool:
        """True unless this is lightonml's simulator (``simulated=True``)."""
        return not self.__dict__.get("_lightonml_simulated", False)

    @property
    def max_n_features(self) -> int:
        if self.stands_for_device:
            return int(np.prod(self.device.input_shape))
        return self._max_n_features

    @max_n_features.setter
    def max_n_features(self, value: int) -> None:
        value = _opu.positive_int(value, "max_n_features")
        if self.stands_for_device and "device" in self.__dict__ \
                and value != self.max_n_features:
            raise AttributeError(
                f"max_n_features can't be set on an OPU device: it takes up to "
                f"{self.max_n_features:,} features (its input's pixels). For lightonml's "
                "simulator with another size, use OPU(simulated=True, max_n_features=...)")
        self._max_n_features = value

    def _matrix_scale_features(self):
        # lightonml draws H at (max_n_features × n_components), entries N(0, 1/max_n_features)
        return None if self.stands_for_device else self.max_n_features

    def _fit_sample_ones(self, X, traits):
        # lightonml fits on any numeric sample (the randomized linear algebra notebook fits on
        # a real matrix that an encoder binarizes later): only its shape counts then.
        try:
            return super()._fit_sample_ones(X, traits)
        except ValueError as exc:
            if "not binary" in str(exc) or "NaN" in str(exc):
                return None
            raise

    def version(self, devices: bool = False) -> str:
        """lightonml's multi-line version string, naming what answers."""
        from .. import __version__
        from ..compat import LIGHTONML_VERSION

        lines = []
        if not self.simulated:
            from .internal.config import opu_version

            lines.append(opu_version(self.config))
        kind = "the simulator" if self.simulated else "the OPU"
        lines.append(f"lightonml version {LIGHTONML_VERSION} (opu_kernel {__version__}, "
                     f"{kind})")
        if devices or not self.simulated:
            lines += [f"{k} version {v}" for k, v in self.device.version().items()]
        return "\n".join(lines)

    def __getstate__(self):
        state = super().__getstate__()
        state["lightonml_simulated"] = self._lightonml_simulated
        return state

    def __setstate__(self, state):
        params = dict(state["params"])
        if state.get("lightonml_simulated"):
            params["simulated"] = True
        else:
            params.pop("backend", None)  # stands for the device: the hardware if attached
        self.__init__(opu_device=state["device"], open_at_init=state["open"], **params)
        self._traits = state["traits"]
        self._online, self._fit_override, self._ones_fraction = state["fit"]


def _tell_standing_in() -> None:
    global _told_standing_in
    if _told_standing_in:
        return
    _told_standing_in = True
    log.warning("lightonml.OPU: no OPU on this machine, opu_kernel's simulator answers as the "
                "device would (uint8 camera counts, up to %d × %d input features). "
                "OPU(simulated=True) gives lightonml's simulator (float32).",
                *DEVICE_INPUT_SHAPE)
