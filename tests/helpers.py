"""Helpers shared by tests in several folders."""

import json
import os
from pathlib import Path

import numpy as np


def binary(shape, seed=0):
    """Random 0/1 input of ``shape`` (uint8), reproducible."""
    return np.random.default_rng(seed).integers(0, 2, shape, dtype=np.uint8)


class StandInDevice:
    """A character device node standing in for /dev/opu0, plus the fake driver's call log."""

    def __init__(self, node: Path, log: Path):
        self.node = node
        self.log = log

    def events(self) -> list[dict]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def event_names(self) -> list[str]:
        return [e["event"] for e in self.events()]


def make_stand_in_node(path: Path, mode: int = 0o666) -> Path:
    """mknod a character device with /dev/null's numbers (harmless if opened)."""
    os.mknod(path, 0o020000 | mode, os.makedev(1, 3))
    os.chmod(path, mode)
    return path
