"""What the status-bar item shows, from the environment the hub gives every server (pure).

The hub's contract with a single-user server (hub/README.md, "What the kernel and the image
get") is a set of environment variables fixed at spawn: the profile, the default backend, the
device as the kernel sees it, and the lease (holder, start, expiry, warning). The lease cannot
change while the server runs: it ends with the server (stop, cull, revoke, expiry). So the
server's environment is the truth for *this* server; the browser counts the time down. (A
window reserved on the shared OPU is the exception: a tutor may end it early while the server
runs on; ``%opu`` asks the broker, which knows.)
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

BACKENDS = ("simulator", "hardware", "shared", "auto")


def parse_iso(text: str | None) -> datetime | None:
    """An ISO 8601 time as the hub writes it (UTC, 'Z' or an offset); None for '', 'never' or
    anything unreadable (the item then shows no countdown rather than a wrong one)."""
    if not text or text.strip().lower() == "never":
        return None
    value = text.strip()
    if value.endswith("Z"):
        value = value[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _seconds(text: str | None) -> int | None:
    try:
        value = float(text) if text not in (None, "") else None
    except ValueError:
        return None
    return int(value) if value is not None and math.isfinite(value) and value > 0 else None


def status_from_env(env: dict[str, str], now: datetime) -> dict:
    """The JSON the ``opuhub/status`` endpoint answers.

    ``on_hub`` is False for a Jupyter server started by hand (no JupyterHub variables): then
    the backend is whatever ``OPU()`` picks ("auto": hardware if present, else simulator).
    ``seconds_left`` is counted from ``now`` on the server's clock, so a browser with a wrong
    clock still counts down correctly from the moment it read the answer.
    """
    on_hub = bool(env.get("JUPYTERHUB_API_URL"))
    backend = (env.get("OPU_BACKEND") or "auto").strip().lower()
    if backend not in BACKENDS:
        backend = "auto"
    held = env.get("OPU_LEASE_STATUS", "none") == "held"
    device = env.get("OPU_DEVICE") or None
    lease = None
    if held:
        expires = parse_iso(env.get("OPU_LEASE_EXPIRES"))
        started = parse_iso(env.get("OPU_LEASE_STARTED"))
        lease = {
            "holder": env.get("OPU_LEASE_HOLDER") or None,
            "device": env.get("OPU_LEASE_DEVICE") or device,
            "started": started.isoformat() if started else None,
            "expires": expires.isoformat() if expires else None,
            "seconds_left": None if expires is None else max(0.0, (expires - now).total_seconds()),
            "warning_seconds": _seconds(env.get("OPU_LEASE_WARNING_SECONDS")),
        }
    return {
        "on_hub": on_hub,
        "profile": env.get("OPU_PROFILE") or None,
        "backend": backend,
        "device": device if held or not on_hub else None,
        "user": env.get("JUPYTERHUB_USER") or None,
        "lease": lease,
        "now": now.isoformat(),
    }


def label(status: dict) -> str:
    """The item's short text, as the browser writes it (kept here for the tests and the docs:
    src/index.js has the same rules). On the shared OPU a lease is a window reserved for this
    user: "OPU: shared · reserved · 12:05 left"."""
    backend = status["backend"]
    lease = status.get("lease")
    if backend == "shared" and lease:
        text = "OPU: shared · reserved"
        if lease.get("seconds_left") is not None:
            text += f" · {format_left(lease['seconds_left'])} left"
        return text
    if backend == "hardware" and lease:
        text = f"OPU: hardware {lease.get('device') or ''}".rstrip()
        if lease.get("holder"):
            text += f" · {lease['holder']}"
        if lease.get("seconds_left") is not None:
            text += f" · {format_left(lease['seconds_left'])} left"
        return text
    return f"OPU: {backend}"


def format_left(seconds: float) -> str:
    """'1:02:03', '12:05' or '0:42' (h:mm:ss / m:ss), never negative."""
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
