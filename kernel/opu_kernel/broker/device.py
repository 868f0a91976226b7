"""The device behind the broker: the simulator with a timing model, or the hardware.

Both run one slice of a request through an opu_kernel backend, configured exactly as the
kernel's ``OPU`` would configure its own (same ``configure`` arguments), so that a shared
transform gives the bytes an in-process one gives.
"""

from __future__ import annotations

import collections

import numpy as np

from ..backends import make_backend
from ..backends.base import Acquisition, Backend


class Device:
    """What the broker drives. ``frame_s``: modeled seconds per camera frame (None: the
    device takes the time it takes)."""

    name = "device"
    frame_s: float | None = None
    input_shape = Backend.input_shape
    output_shape_max = Backend.output_shape_max

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def check(self, params: dict) -> None:
        """Refuse (ValueError) a request this device cannot serve, before it is queued."""

    def run(self, params: dict, rows: np.ndarray) -> Acquisition:
        raise NotImplementedError

    def describe(self) -> dict:
        return {"device": self.name}


def configuration(params: dict) -> tuple:
    return (params["n_features"], params["n_components"], params["ones_fraction"],
            tuple(sorted(params["override"].items())))


def configure(backend: Backend, params: dict) -> None:
    override = dict(params["override"])
    backend.configure(params["n_features"], params["n_components"], params["ones_fraction"],
                      **override)


class SimulatedDevice(Device):
    """The simulator, one backend per (seed, shape) kept while they fit in ``cache_bytes``
    (users with different shapes then do not redraw H at every turn), and a timing model:
    the broker holds the device ``frame_s`` per frame, as a camera would."""

    name = "simulated"

    def __init__(self, frame_s: float = 500e-6, cache_bytes: int = 2**30):
        self.frame_s = float(frame_s)
        self.cache_bytes = int(cache_bytes)
        self._backends: collections.OrderedDict = collections.OrderedDict()

    def close(self) -> None:
        for backend, _ in self._backends.values():
            backend.close()
        self._backends.clear()

    def check(self, params):
        size = 8 * params["n_features"] * params["n_components"]
        if size > self.cache_bytes:
            raise ValueError(
                f"the simulated shared OPU holds random matrices of at most "
                f"{self.cache_bytes // 2**20} MiB; {params['n_features']} features × "
                f"{params['n_components']} components need {size // 2**20} MiB: use fewer "
                "components, or backend='simulator' in your own server")

    def run(self, params, rows):
        override = params["override"]
        key = (params["seed"], params["n_features"], params["n_components"],
               override.get("scale_features"))
        entry = self._backends.pop(key, None)
        if entry is None:
            backend = make_backend("simulator", seed=params["seed"])
            backend.open()
            entry = [backend, None]
        self._backends[key] = entry  # most recently used last
        backend, configured = entry
        wanted = configuration(params)
        if configured != wanted:
            configure(backend, params)
            entry[1] = wanted
        acquisition = backend.transform(rows, linear=params["linear"])
        self._evict()
        return acquisition

    def _evict(self) -> None:
        # H is two float32 parts of n_features × n_components
        def size(key):
            return 8 * key[1] * key[2]

        while len(self._backends) > 1 and sum(map(size, self._backends)) > self.cache_bytes:
            _, (backend, _) = self._backends.popitem(last=False)
            backend.close()

    def describe(self) -> dict:
        return {"device": "simulated", "frame_us": round(self.frame_s * 1e6, 3)}


class HardwareDevice(Device):
    """The OPU through the hardware backend, opened once for the broker's lifetime: the broker
    holds the device lock (an flock, released by the kernel if the broker dies)."""

    name = "hardware"

    def __init__(self, device: str | None = None):
        self.backend = make_backend("hardware", device=device)
        self._configured = None

    def open(self) -> None:
        self.backend.open()

    def close(self) -> None:
        self.backend.close()
        self._configured = None

    @property
    def input_shape(self):
        return self.backend.input_shape

    @property
    def output_shape_max(self):
        return self.backend.output_shape_max

    def check(self, params):
        if params["linear"]:
            raise ValueError("linear_transform on the shared OPU hardware is not available "
                             "(the driver's linear reconstruction is not called)")
        inputs = int(np.prod(self.input_shape))
        if params["n_features"] > inputs:
            raise ValueError(f"{params['n_features']} features do not fit the device's "
                             f"{inputs} input pixels")

    def run(self, params, rows):
        # The device has one physical matrix: the request's seed means nothing here.
        wanted = configuration(params)
        if self._configured != wanted:
            configure(self.backend, params)
            self._configured = wanted
        return self.backend.transform(rows, linear=params["linear"])

    def describe(self) -> dict:
        info = self.backend.describe()
        return {"device": info.get("device"), "driver_version": info.get("driver_version")}
