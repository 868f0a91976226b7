"""The real OPU, reached through LightOn's vendor driver ``lightonopu``.

This backend only delegates: acquisition, exposure and input formatting belong to the
driver. It follows the calling convention of lightonml 1.4 (``OpuDevice`` built from the
``/etc/lighton`` configuration, ``open``/``close``, ``transform1`` on a batch of inputs laid
out on the input device). It has been exercised with a fake driver module and a stand-in
device node only: see the README's "What is verified" section.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import stat
from pathlib import Path

import numpy as np

from ..errors import BackendUnavailableError
from ..lock import DeviceLock
from .base import Acquisition, Backend

DEFAULT_DEVICE = "/dev/opu0"
DRIVER_MODULE = "lightonopu"
HOST_CONFIG = Path("/etc/lighton/host.json")
DEFAULT_CONFIG = Path("/etc/lighton/opu.json")
FALLBACK_CONFIG = {"type": "", "name": "opu", "input": {"frametime_us": 500},
                   "output": {"exposure_us": 400}}


def device_path(device: str | None = None) -> str:
    return device or os.environ.get("OPU_DEVICE") or DEFAULT_DEVICE


def hardware_problems(device: str | None = None) -> list[str]:
    """What stands between this process and the hardware backend; empty when usable."""
    path = device_path(device)
    problems = []
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        problems.append(f"no device node at {path} (set OPU_DEVICE; on a hub with an OPU, "
                        "start your server with the 'OPU hardware' profile)")
    except PermissionError:
        problems.append(f"no permission to look at {path}")
    else:
        if not stat.S_ISCHR(mode):
            problems.append(f"{path} is not a character device")
        elif not os.access(path, os.R_OK | os.W_OK):
            problems.append(f"no read/write permission on {path} (add the user to the "
                            "device's group)")
    if importlib.util.find_spec(DRIVER_MODULE) is None:
        problems.append(f"LightOn's driver module '{DRIVER_MODULE}' is not installed")
    return problems


def load_config(config_file: str = "", config_override: dict | None = None) -> dict:
    """The device configuration, located as lightonml does; overrides applied on top."""
    if config_file:
        location = Path(config_file)
    elif HOST_CONFIG.exists():
        location = Path(json.loads(HOST_CONFIG.read_text())["opu_config"])
    else:
        location = DEFAULT_CONFIG
    config = json.loads(location.read_text()) if location.exists() else json.loads(
        json.dumps(FALLBACK_CONFIG))
    for key, value in (config_override or {}).items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key].update(value)
        else:
            config[key] = value
    return config


class HardwareBackend(Backend):
    name = "hardware"

    def __init__(self, device: str | None = None, config_file: str = "",
                 config_override: dict | None = None):
        self.device = device_path(device)
        problems = hardware_problems(self.device)
        if problems:
            raise BackendUnavailableError(
                "the hardware backend is not available: " + "; ".join(problems)
                + ". Use OPU(backend='simulator') to run on the simulator.")
        self.config = load_config(config_file, config_override)
        self._lock = DeviceLock(self.device)
        self._driver = None
        self._opu = None
        self._shape = None
        self._override = {}

    def _driver_module(self):
        if self._driver is None:
            self._driver = importlib.import_module(f"{DRIVER_MODULE}.internal.device")
        return self._driver

    def open(self) -> None:
        if self._opu is not None:
            return
        self._lock.acquire()
        try:
            config = self.config
            opu = self._driver_module().OpuDevice(
                config.get("type", ""), config["input"]["frametime_us"],
                config["output"]["exposure_us"], config.get("sequence_nb_prelim", 0), None,
                -1, config.get("name", "opu"))
            opu.open()
        except BaseException:
            self._lock.release()
            raise
        self._opu = opu

    def close(self) -> None:
        if self._opu is not None:
            try:
                self._opu.close()
            finally:
                self._opu = None
                self._lock.release()

    @property
    def is_open(self) -> bool:
        return self._opu is not None

    def configure(self, n_features, n_components, ones_fraction=None, **override):
        input_size = int(np.prod(self._opu.input_shape))
        output_size = int(np.prod(self._opu.output_shape_max))
        if n_features > input_size:
            raise ValueError(f"{n_features} features do not fit the device's {input_size} "
                             "input pixels; reduce n_features (e.g. with fewer encoder bits)")
        if n_components > output_size:
            raise ValueError(f"n_components={n_components} exceeds the device's "
                             f"{output_size} output pixels; set opu.n_components <= "
                             f"{output_size}")
        self._shape = (int(n_features), int(n_components))
        self._override = dict(override)

    def transform(self, X, linear=False, progress=None):
        opu = self._opu
        if linear:
            raise NotImplementedError(
                "linear_transform on the hardware backend needs the driver's "
                "linear reconstruction, which this build does not call yet; use the simulator")
        if "exposure_us" in self._override:
            opu.exposure_us = self._override["exposure_us"]
        n_features, n_components = self._shape
        input_size = int(np.prod(opu.input_shape))
        # Lined layout: the features occupy the first pixels of the input device.
        frames = np.zeros((X.shape[0], input_size), dtype=np.uint8)
        frames[:, :n_features] = X
        raw = np.asarray(opu.transform1(frames))
        output = raw.reshape(X.shape[0], -1)[:, :n_components]
        if progress is not None:
            progress(1.0)
        return Acquisition(
            output=output, exposure_us=opu.exposure_us, frametime_us=opu.frametime_us,
            saturated=float(np.count_nonzero(output == 255)) / max(1, output.size),
        )

    @property
    def input_shape(self):
        """The device's input shape (the driver's, once open)."""
        return tuple(self._opu.input_shape) if self._opu is not None else Backend.input_shape

    @property
    def output_shape_max(self):
        return (tuple(self._opu.output_shape_max) if self._opu is not None
                else Backend.output_shape_max)

    def describe(self) -> dict:
        return {"backend": self.name, "device": self.device, "open": self.is_open,
                "driver_version": self.version().get("lightonopu")}

    def version(self) -> dict:
        module = importlib.import_module(DRIVER_MODULE)
        return {"lightonopu": getattr(module, "__version__", "unknown")}
