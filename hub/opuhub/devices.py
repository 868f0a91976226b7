"""Which OPU device nodes this host has: the one place that knows their name pattern."""

from __future__ import annotations

import glob

DEVICE_GLOB = "/dev/opu*"


def detect_devices(pattern: str = DEVICE_GLOB) -> list[str]:
    """Every node matching ``pattern`` now, sorted (the order leases hand them out)."""
    return sorted(glob.glob(pattern))
