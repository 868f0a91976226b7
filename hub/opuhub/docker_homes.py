"""Where a Docker user's home lives: a size-limited filesystem of the host, or a named volume.

A named volume lies in the engine's data directory (/var/lib/docker), usually on the disk that
also holds the hub's databases, and has no size limit: one attendee filling it fills that disk.
So when it can, the hub gives each container the home that :mod:`opuhub.home_quota` prepares
(a loop-mounted ext4 image of ``home_quota`` bytes under ``homes_dir``) as a bind mount.

It can when it runs as root **and** the Docker engine sees the same filesystem: the engine
resolves a bind's source path in its own mount namespace, so a hub inside a container (the
``opuhub/hub`` image, talking to the host's engine through its socket) would hand it paths that
exist only in the hub's container. That hub keeps named volumes, not size-limited (logged).

``decide`` is the pure choice; ``engine_shares_filesystem`` does the I/O of finding out.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

HOST = "host"
VOLUME = "volume"
AUTO = "auto"
MODES = (AUTO, HOST, VOLUME)
ENGINE_NAMES = ("dockerd",)


@dataclass(frozen=True)
class HomeStorage:
    kind: str  # HOST or VOLUME
    reason: str  # one line for the hub's log

    @property
    def on_host(self) -> bool:
        return self.kind == HOST


def decide(mode: str, quota_bytes: int, hub_is_root: bool, engine_shares: bool,
           quota_text: str = "", homes_dir: str = "") -> HomeStorage:
    """Size-limited host homes or named volumes (pure).

    ``mode``: 'host' (always; a spawn fails with a clear error if the home cannot be made),
    'volume' (never), 'auto' (host when ``quota_bytes`` > 0 and the hub can make them)."""
    if mode not in MODES:
        raise ValueError(f"home_storage must be one of {', '.join(MODES)}, got {mode!r}")
    limited = (f"homes: {quota_text or quota_bytes} each, size-limited filesystems under "
               f"{homes_dir or 'homes_dir'} bound into the containers")
    if mode == HOST:
        return HomeStorage(HOST, limited if quota_bytes > 0 else
                           f"homes: directories under {homes_dir or 'homes_dir'}, NOT "
                           "size-limited (home_quota is 0)")
    unlimited = "homes: Docker volumes opuhub-home-<user>, NOT size-limited: "
    if mode == VOLUME:
        return HomeStorage(VOLUME, unlimited + "home_storage is 'volume'")
    if quota_bytes <= 0:
        return HomeStorage(VOLUME, unlimited + "OPUHUB_HOME_QUOTA is 0")
    if not hub_is_root:
        return HomeStorage(VOLUME, unlimited + "the hub does not run as root, so it cannot "
                           "loop-mount size-limited homes")
    if not engine_shares:
        return HomeStorage(VOLUME, unlimited + "the Docker engine does not see this hub's "
                           "filesystem (hub in a container, or a remote engine); run the hub "
                           "on the engine's host for size-limited homes")
    return HomeStorage(HOST, limited)


def volume_predates(created_at: str, user_created: datetime) -> bool:
    """True when a home volume made at ``created_at`` (Docker's ``CreatedAt``, RFC 3339) is
    older than the hub user it would be given: it was made for an earlier user of that name,
    deleted since (Docker cannot rename a volume to archive it). A time Docker wrote in a form
    this cannot read counts as older: the files stay unreachable until an admin decides.

    Docker keeps whole seconds, so both times are compared to the second (a volume made in the
    second its user was created is theirs). Both clocks are this host's (a remote engine with
    a skewed clock could misjudge by the skew)."""
    text = re.sub(r"(\.\d{6})\d+", r"\1", created_at.strip().replace("Z", "+00:00"))
    try:
        made = datetime.fromisoformat(text)
    except ValueError:
        return True
    if made.tzinfo is None:
        made = made.replace(tzinfo=UTC)
    if user_created.tzinfo is None:  # JupyterHub stores UTC without a zone
        user_created = user_created.replace(tzinfo=UTC)
    return made.replace(microsecond=0) < user_created.replace(microsecond=0)


def _mount_namespace(pid: str | int, proc: Path) -> str | None:
    try:
        return os.readlink(proc / str(pid) / "ns" / "mnt")
    except OSError:
        return None


def engine_shares_filesystem(docker_host: str | None = None, proc: Path = Path("/proc")) -> bool:
    """True when a local Docker engine runs in this process's mount namespace, so a host path
    the hub prepares is the path the engine binds. A remote engine (``DOCKER_HOST`` other than
    a unix socket), an engine outside this PID namespace (hub in a container) or in another
    mount namespace (rootless Docker) → False."""
    docker_host = os.environ.get("DOCKER_HOST", "") if docker_host is None else docker_host
    if docker_host and not docker_host.startswith("unix://"):
        return False
    ours = _mount_namespace("self", proc)
    if ours is None:
        return False
    try:
        entries = [entry for entry in os.listdir(proc) if entry.isdigit()]
    except OSError:
        return False
    for pid in entries:
        try:
            name = (proc / pid / "comm").read_text().strip()
        except OSError:
            continue
        if name in ENGINE_NAMES and _mount_namespace(pid, proc) == ours:
            return True
    return False


_detected: dict[str, bool] = {}


def storage(mode: str, quota_bytes: int, quota_text: str = "", homes_dir: str = "") -> HomeStorage:
    """:func:`decide` with this process's facts (the engine probe is done once)."""
    if mode == AUTO and quota_bytes > 0 and "engine" not in _detected:
        _detected["engine"] = engine_shares_filesystem()
    return decide(mode, quota_bytes, os.geteuid() == 0, _detected.get("engine", False),
                  quota_text, homes_dir)


def startup_line(home_quota: str, homes_dir, mode: str = AUTO) -> str:
    """The hub's log line at start: where homes live and whether they are size-limited."""
    from .cgroups import parse_bytes

    return storage(mode, parse_bytes(home_quota), home_quota, str(homes_dir)).reason


def overcommit_warning(homes_dir: Path) -> str | None:
    """A warning when the homes' images, filled to their size, would not fit on the disk.

    The images are sparse: they cost what users wrote. If every user filled theirs, the
    filesystem holding ``homes_dir`` (often the hub's too) would need the difference."""
    from .home_quota import IMAGES

    images = homes_dir / IMAGES
    try:
        sizes = [(p.stat().st_size, p.stat().st_blocks * 512) for p in images.glob("*.ext4")]
        free = os.statvfs(homes_dir)
    except OSError:
        return None
    missing = sum(max(0, size - used) for size, used in sizes)
    available = free.f_bavail * free.f_frsize
    if missing <= available:
        return None
    gib = 1024**3
    return (f"the {len(sizes)} homes under {homes_dir} could grow by {missing / gib:.1f} GiB "
            f"but only {available / gib:.1f} GiB are free there: put homes_dir on a filesystem "
            "of its own, or lower OPUHUB_HOME_QUOTA for new users")


def read_retired(path: Path) -> dict[str, str]:
    """Home volumes of deleted users: {volume name: its CreatedAt when its user was deleted}.
    A volume removed and made anew has another CreatedAt, so it is nobody's leftover."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}


def record_retired(path: Path, volume: str, created_at: str) -> None:
    path = Path(path)
    retired = read_retired(path)
    retired[volume] = created_at
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(retired, f)
    os.replace(tmp, path)
