"""Fake ``OpuDevice``: the calls opu_kernel's hardware backend makes, logged and simulated."""

import json
import os
import time

import numpy as np

from opu_kernel.backends.simulator import SimulatorBackend

INPUT_SHAPE = (16, 64)  # a small input device: 1024 pixels
OUTPUT_SHAPE_MAX = (64, 256)  # and a small camera: 16384 pixels


def log_event(event: str, **details) -> None:
    path = os.environ.get("FAKE_LIGHTONOPU_LOG")
    if path:
        with open(path, "a") as log:
            log.write(json.dumps({"event": event, "pid": os.getpid(), "time": time.time(),
                                  **details}) + "\n")


class OpuDevice:
    def __init__(self, opu_type, frametime_us, exposure_us, seq_nb_prelim, _, verbose, name):
        self.opu_type = opu_type
        self.frametime_us = frametime_us
        self.exposure_us = exposure_us
        self.name = name
        self.input_shape = INPUT_SHAPE
        self.output_shape_max = OUTPUT_SHAPE_MAX
        self.active = False
        self._simulator = SimulatorBackend(seed=42, camera="8bit")
        log_event("init", name=name, exposure_us=exposure_us)

    def open(self):
        self.active = True
        log_event("open")

    def close(self):
        self.active = False
        log_event("close")

    def transform1(self, frames):
        assert self.active, "fake driver: transform on a closed device"
        frames = np.asarray(frames)
        assert frames.dtype == np.uint8 and frames.shape[1] == np.prod(self.input_shape)
        log_event("transform1", shape=list(frames.shape), ones=int(frames.sum()))
        # A slow acquisition, for tests that interrupt one.
        time.sleep(float(os.environ.get("FAKE_LIGHTONOPU_TRANSFORM_SECONDS", "0")))
        if not self._simulator.is_open:
            self._simulator.configure(frames.shape[1], int(np.prod(OUTPUT_SHAPE_MAX)), 0.05)
            self._simulator.open()
        return self._simulator.transform(frames, linear=False).output
