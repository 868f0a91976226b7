"""The shared OPU on the hub: its broker as a hub-managed service, and each user's key.

The broker (``python -m opu_kernel.broker``, see kernel/README.md "The shared OPU") owns one
device — the simulated one with its timing model unless a device node is given — and serves
every server started with the "Shared OPU" profile. Its device is leasable like any other
(named as OPUHUB_SHARED_OPU names it): a lease on it is a window during which the broker,
which follows the lease service's ``api/leases`` with a hub token of its own, serves only the
holder. The hub holds the broker's secret
(``state/opu-broker-secret``, 0600) and gives each such server only what it needs: the
broker's address, the user's name and the user's key, derived from the secret, so that a
kernel can sign requests as its own user and no other.

Pure builders apart from :func:`broker_secret` (which creates the secret file once).
"""

from __future__ import annotations

import hashlib
import hmac
import sys
from pathlib import Path
from urllib.parse import urlparse

from . import secrets
from .hubconfig import LEASE_SERVICE  # whose api/leases the broker follows

BROKER_SERVICE = "opu-broker"
SECRET_FILE = "opu-broker-secret"
SIMULATED = "simulated"  # OPUHUB_SHARED_OPU's name for the simulator with the timing model
#: what the broker's own hub token may do: read the leases (every hub user may), nothing else
BROKER_SCOPES = [f"access:services!service={LEASE_SERVICE}"]


def broker_secret(state_dir: Path) -> str:
    """The broker's secret (hex), created on first use; restarts keep it, so keys stay valid."""
    return secrets.read_or_create(Path(state_dir) / SECRET_FILE, secrets.token)


def user_key(secret_hex: str, user: str) -> str:
    """``user``'s key (hex), as the broker derives it (``opu_kernel.broker.protocol.user_key``;
    written out here because the hub's image has no opu_kernel — a test checks they agree)."""
    return hmac.new(bytes.fromhex(secret_hex), b"opu-broker/user-key/v1\0" + user.encode(),
                    hashlib.sha256).hexdigest()


def broker_command(bind_ip: str, port: int, device: str = "", frame_us: float = 500.0,
                   leases_url: str = "", quota_seconds: float = 0.0,
                   quota_period_seconds: float = 86400.0) -> list:
    """The broker's command line: listening on ``bind_ip:port``, fronting ``device`` (a node)
    or the simulated device with ``frame_us`` per frame; following the leases on its device
    at ``leases_url`` (each one a window reserved for its holder); with each user's device
    time capped at ``quota_seconds`` per rolling ``quota_period_seconds`` (0: no cap)."""
    name = device or SIMULATED
    command = [sys.executable, "-m", "opu_kernel.broker", f"--bind=tcp://{bind_ip}:{port}",
               f"--device={name}", f"--frame-us={frame_us:g}"]
    if leases_url:
        command += [f"--leases-url={leases_url}", f"--lease-device={name}"]
    frames = quota_frames(quota_seconds, frame_us)
    if frames:
        command += [f"--quota-frames={frames}", f"--quota-window-s={quota_period_seconds:g}"]
    return command


def quota_frames(quota_seconds: float, frame_us: float) -> int:
    """The lease quota (OPUHUB_QUOTA_SECONDS of OPU time per period) in camera frames: on the
    shared OPU a user's OPU time is the device time of their frames. 0: no quota."""
    if quota_seconds <= 0:
        return 0
    return max(1, int(quota_seconds * 1e6 / frame_us))


def leases_url(service_base: str) -> str:
    """The lease service's ``api/leases`` under ``service_base`` (its own address, or the
    proxy's, where the broker runs)."""
    return service_base.rstrip("/") + f"/services/{LEASE_SERVICE}/api/leases"


def broker_service(command: list, secret_hex: str, environment: dict | None = None) -> dict:
    """The JupyterHub service entry: managed (JupyterHub restarts it if it exits), no HTTP,
    the secret in its environment (never on a command line, which other users can read)."""
    return {"name": BROKER_SERVICE, "command": command,
            "environment": {**(environment or {}), "OPU_BROKER_SECRET": secret_hex}}


def broker_url(hub_api_url: str, port: int) -> str:
    """Where a user's server reaches the broker: the host it reaches the hub's API at (the
    loopback locally, the hub's address on the users' network with Docker)."""
    host = urlparse(hub_api_url).hostname or "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"tcp://{host}:{port}"


def kernel_broker_env(secret_hex: str, user: str, url: str) -> dict[str, str]:
    """The environment that points ``user``'s kernels at the broker (``OPU_BROKER_*``)."""
    return {"OPU_BROKER_URL": url, "OPU_BROKER_USER": user,
            "OPU_BROKER_KEY": user_key(secret_hex, user)}
