"""The shared OPU: transforms go to the hub's OPU broker, which serves everyone in turns.

Chosen with ``backend="shared"``, ``OPU_BACKEND=shared``, or automatically when the hub's
"Shared OPU" profile set ``OPU_BROKER_URL`` (with ``OPU_BROKER_USER`` and ``OPU_BROKER_KEY``,
this user's key). The broker answers as the device does: 8-bit camera counts; on the
simulated device, the bytes the in-process simulator gives for the same seed and inputs.
Nothing is held while idle: ``open`` only checks that the broker answers.
"""

from __future__ import annotations

import time

import numpy as np

from .base import Acquisition, Backend

STATUS_TIMEOUT_S = 2.0


class SharedBackend(Backend):
    name = "shared"

    def __init__(self, seed: int = 0, camera: str = "8bit", camera_noise: bool = False,
                 client=None, environ=None):
        if camera != "8bit" or camera_noise:
            raise ValueError("the shared OPU answers as the device does (camera='8bit', no "
                             "noise model); use backend='simulator' for camera='exact' or "
                             "camera_noise=True")
        from ..broker.client import BrokerClient

        self.client = client or BrokerClient.from_env(environ)
        self.seed = int(seed)
        self.camera_name = camera
        self._open = False
        self._params: dict | None = None
        self.last_wait_s: float | None = None
        self.last_device_s: float | None = None
        self.last_run_s: float | None = None

    # -- life cycle -------------------------------------------------------------------
    def open(self) -> None:
        if not self._open:
            self.client.hello()  # fails with a clear message when the broker is unreachable
            self._open = True

    def close(self) -> None:
        self._open = False
        self.client.reset()

    @property
    def is_open(self) -> bool:
        return self._open

    @property
    def _hello(self) -> dict:
        return self.client.hello_info or {}

    @property
    def input_shape(self):
        return tuple(self._hello.get("input_shape") or Backend.input_shape)

    @property
    def output_shape_max(self):
        return tuple(self._hello.get("output_shape_max") or Backend.output_shape_max)

    def configure(self, n_features, n_components, ones_fraction=None, scale_features=None,
                  **override):
        from ..broker.protocol import OVERRIDE_KEYS

        unknown = set(override) - set(OVERRIDE_KEYS)
        if unknown:
            raise ValueError(f"the shared OPU does not take {sorted(unknown)}; it accepts "
                             f"{sorted(set(OVERRIDE_KEYS) - {'scale_features'})}")
        if scale_features is not None:
            override["scale_features"] = int(scale_features)
        limits = self._hello.get("limits", {})
        for name, value in (("n_features", n_features), ("n_components", n_components)):
            most = limits.get(f"max_{name}")
            if most is not None and value > most:
                raise ValueError(f"{name}={value} exceeds the shared OPU's {most}")
        self._params = {"n_components": int(n_components), "seed": self.seed,
                        "ones_fraction": None if ones_fraction is None else float(ones_fraction),
                        "override": {k: (int(v) if k == "scale_features" else float(v))
                                     for k, v in override.items()}}

    # -- transform --------------------------------------------------------------------
    def chunk_rows(self, n_features: int, n_components: int, linear: bool) -> int:
        """Rows per request: the broker's batch, result and message limits."""
        limits = self._hello.get("limits", {})
        most = int(limits.get("max_rows", 10_000))
        result_bytes = limits.get("max_result_bytes")
        if result_bytes:
            most = min(most, max(1, int(result_bytes) // (n_components * (4 if linear else 1))))
        message_bytes = limits.get("max_message_bytes")
        if message_bytes:  # the packed rows, leaving room for the header
            most = min(most, max(1, (int(message_bytes) - 8192) // ((n_features + 7) // 8)))
        return most

    def transform(self, X, linear=False, progress=None):
        params = dict(self._params, linear=bool(linear))
        X = np.asarray(X)
        step = self.chunk_rows(X.shape[1], params["n_components"], linear)
        outputs, saturated, exposure, frametime = [], 0.0, None, None
        wait = device = run = 0.0
        for start in range(0, X.shape[0], step):
            rows = X[start:start + step]
            output, header = self.client.transform(params, rows)
            outputs.append(output)
            if header.get("saturated") is not None:
                saturated += header["saturated"] * output.size
            exposure, frametime = header.get("exposure_us"), header.get("frametime_us")
            wait += float(header.get("wait_s") or 0)
            device += float(header.get("device_s") or 0)
            run += float(header.get("run_s") or 0)
            if progress is not None:
                progress(rows.shape[0] / X.shape[0])
        output = outputs[0] if len(outputs) == 1 else np.concatenate(outputs)
        self.last_wait_s, self.last_device_s, self.last_run_s = wait, device, run
        return Acquisition(output=output, exposure_us=exposure, frametime_us=frametime,
                           saturated=None if exposure is None else saturated / max(1, output.size))

    # -- information ------------------------------------------------------------------
    def describe(self) -> dict:
        info = {"backend": self.name, "broker": self.client.url, "user": self.client.user,
                "seed": self.seed, "camera": self.camera_name}
        info.update(broker_status(self.client))
        if self.last_wait_s is not None:
            info["last_wait_s"] = round(self.last_wait_s, 4)
        return info

    def version(self) -> dict:
        return {"broker": self.client.url}


def broker_status(client) -> dict:
    """What ``%opu`` shows about the shared device: the device, the queue, your position and
    share. Never raises: an unreachable broker is reported as such."""
    from ..broker.client import BrokerError

    try:
        status = client.status(timeout_s=STATUS_TIMEOUT_S)
    except (BrokerError, OSError) as exc:
        return {"device": "shared (broker unreachable)", "broker_state": str(exc)}
    info = {"device": f"shared: {status.get('device')}",
            "queue": f"{status.get('queue_requests')} requests, {status.get('queue_frames')} "
                     f"frames, {status.get('users_waiting')} users waiting",
            "your_position": status.get("position") or "not waiting",
            "your_share": describe_share(status)}
    if status.get("quota_frames"):
        info["your_quota"] = (
            f"{status['quota_used_frames']} of {status['quota_frames']} frames used over the "
            f"last {status['quota_window_s'] / 3600:g} h")
    if status.get("reserved_for"):
        until = status.get("reserved_until")
        info["reserved_for"] = status["reserved_for"] + (
            " until their server stops" if until is None else
            time.strftime(" until %H:%M:%S UTC", time.gmtime(until)))
    return info


def describe_share(status: dict) -> str:
    fair = status.get("fair_share")
    recent = status.get("recent_share")
    window = status.get("window_s", 60)
    used = "none" if recent is None else f"{100 * recent:.0f}%"
    return (f"{used} of the frames of the last {window:.0f} s "
            f"(fair share now {100 * fair:.0f}%, weight {status.get('weight', 1):g})")
