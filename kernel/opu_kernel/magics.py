"""``%opu``: status and control of the kernel's OPU from a notebook cell."""

from __future__ import annotations

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class

USAGE = """%opu                     show backend, device, driver, shape, state, lease
%opu open | close        acquire / release the device (close frees it for others)
%opu reset               close and forget the OPU; the next use creates it anew
%opu backend NAME        switch to 'simulator', 'hardware', 'shared' or 'auto'"""

STATUS_ORDER = ("backend", "device", "broker", "user", "queue", "your_position", "your_share",
                "your_quota",
                "reserved_for", "device_node", "hardware", "driver_version", "open",
                "n_components", "max_n_features", "n_features", "camera", "seed",
                "streaming", "matrix_allocated", "exposure_us", "acquired_at",
                "last_acquisition", "last_duration_s", "last_wait_s", "lease")


def shared_status(info: dict) -> dict:
    """On the shared OPU, the broker's view (device, queue, your position and share) even
    before the kernel's OPU is created; the local device node does not matter there."""
    if info.get("backend") != "shared":
        return info
    info = {k: v for k, v in info.items() if k not in ("device_node", "hardware")}
    if "queue" not in info:
        from .backends.shared import broker_status
        from .broker.client import BrokerClient, BrokerError

        try:
            client = BrokerClient.from_env()
        except BrokerError as exc:
            info["device"] = f"shared (not configured: {exc})"
        else:
            info.update(broker=client.url, user=client.user, **broker_status(client))
            client.close()
    return info


def format_status(info: dict) -> str:
    keys = [k for k in STATUS_ORDER if k in info] + sorted(set(info) - set(STATUS_ORDER))
    width = max(len(k) for k in keys)
    lines = []
    for key in keys:
        value = info[key]
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items())
        elif isinstance(value, float):
            value = f"{value:.1f}"
        lines.append(f"{key:<{width}}  {value}")
    return "\n".join(lines)


@magics_class
class OPUMagics(Magics):
    def __init__(self, shell, proxy):
        super().__init__(shell)
        self.proxy = proxy

    @line_magic("opu")
    def opu(self, line: str = ""):
        """Show or control the kernel's OPU. ``%opu help`` lists the commands."""
        words = line.split()
        command = words[0].lower() if words else "status"
        if command == "status" and len(words) <= 1:
            print(format_status(shared_status(self.proxy.status())))
        elif command == "open" and len(words) == 1:
            self.proxy.open()
            print(f"opened: {self.proxy!r}")
        elif command == "close" and len(words) == 1:
            self.proxy.close()
            print("closed: the device is free for others; the next use re-opens it")
        elif command == "reset" and len(words) == 1:
            self.proxy.reset()
            print("reset: the next use creates a new OPU")
        elif command == "backend" and len(words) == 2:
            try:
                self.proxy.use_backend(words[1].lower())
            except ValueError as exc:
                raise UsageError(str(exc)) from None
            print(f"backend set to {words[1].lower()}: {self.proxy!r}")
        elif command in ("help", "-h", "--help"):
            print(USAGE)
        else:
            raise UsageError(f"%opu {line.strip()!r} is not a command. Usage:\n{USAGE}")
