"""Backends of the OPU proxy and the rule that picks one."""

from __future__ import annotations

import logging
import os

from .base import Acquisition, Backend
from .hardware import HardwareBackend, device_path, hardware_problems
from .simulator import SimulatorBackend

log = logging.getLogger("opu_kernel")

BACKENDS = ("auto", "simulator", "hardware", "shared")

__all__ = ["Acquisition", "Backend", "HardwareBackend", "SimulatorBackend", "BACKENDS",
           "choose_backend", "device_path", "hardware_problems", "make_backend"]


def choose_backend(requested: str | None = None, device: str | None = None) -> str:
    """Resolve ``requested`` (or env ``OPU_BACKEND``, else ``auto``) to a concrete backend name."""
    choice = (requested or os.environ.get("OPU_BACKEND") or "auto").strip().lower()
    if choice not in BACKENDS:
        source = "backend" if requested else "OPU_BACKEND"
        raise ValueError(f"{source}={choice!r} is not a backend; choose one of "
                         + ", ".join(repr(b) for b in BACKENDS))
    if choice != "auto":
        return choice
    if os.environ.get("OPU_BROKER_URL"):
        # The hub's "Shared OPU" profile: the device is the broker's, reached over the network.
        return "shared"
    problems = hardware_problems(device)
    if problems:
        log.info("OPU: using the simulator (no hardware: %s)", "; ".join(problems))
        return "simulator"
    return "hardware"


def make_backend(name: str, *, device=None, seed=0, camera="8bit", camera_noise=False,
                 streaming="auto", config_file="", config_override=None) -> Backend:
    if name == "simulator":
        return SimulatorBackend(seed=seed, camera=camera, camera_noise=camera_noise,
                                streaming=streaming)
    if name == "shared":
        from .shared import SharedBackend

        return SharedBackend(seed=seed, camera=camera, camera_noise=camera_noise)
    return HardwareBackend(device=device, config_file=config_file,
                           config_override=config_override)
