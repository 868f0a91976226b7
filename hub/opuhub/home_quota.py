"""Homes with a hard size limit: one ext4 filesystem image per user, loop-mounted.

The root filesystem here (and on most small servers) has no quota support, and the hub's
database shares it with the homes: one attendee filling their home must not fill the disk
under the hub. So each home is its own small filesystem, a sparse file (it costs only what is
written) formatted ext4 and mounted on the home directory. A full home is ENOSPC for that user
(Jupyter says "Disk full" / "No space left on device") and nobody else notices.

Images live in ``<homes>/.images/<name>.ext4`` (0600 root, the directory 0700), so users see
only the mounted tree. Needs root, ``mkfs.ext4`` (e2fsprogs) and loop devices.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

IMAGES = ".images"


class HomeQuotaError(RuntimeError):
    """The home could not be prepared; the message says what is missing."""


def image_path(homes_dir: Path, name: str) -> Path:
    return homes_dir / IMAGES / f"{name}.ext4"


def is_mounted(path: Path) -> bool:
    return os.path.ismount(path)


def mkfs_command(image: Path) -> list[str]:
    # no reserved blocks for root (the user may use it all); no lazy init surprises in tests
    return ["mkfs.ext4", "-q", "-F", "-m", "0", "-L", "opuhub-home", str(image)]


def mount_command(image: Path, home: Path) -> list[str]:
    # nosuid/nodev: nothing in a home can gain privileges or reach devices
    return ["mount", "-o", "loop,nosuid,nodev", str(image), str(home)]


def _run(command: list[str]) -> None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    except FileNotFoundError:
        raise HomeQuotaError(
            f"{command[0]} is not installed; it is needed for homes with a size limit "
            "(apt-get install e2fsprogs mount), or set OPUHUB_HOME_QUOTA=0") from None
    if done.returncode != 0:
        raise HomeQuotaError(f"{' '.join(command)} failed: {done.stderr.strip()[:300]}")


def ensure_home(homes_dir: Path, name: str, size_bytes: int, uid: int, gid: int) -> Path:
    """Create (first time) and mount ``<homes>/<name>`` with at most ``size_bytes``; 0700 uid:gid.

    An existing image keeps its size and content (a smaller new limit applies to new users
    only; growing one is ``truncate -s`` + ``resize2fs`` by an admin)."""
    home = homes_dir / name
    home.mkdir(mode=0o700, exist_ok=True)
    if size_bytes > 0 and not is_mounted(home):
        images = homes_dir / IMAGES
        images.mkdir(mode=0o700, exist_ok=True)
        os.chmod(images, 0o700)
        image = image_path(homes_dir, name)
        if not image.exists():
            if any(home.iterdir()):
                raise HomeQuotaError(
                    f"{home} already holds files but has no size-limited image: move them "
                    "aside or set OPUHUB_HOME_QUOTA=0")
            tmp = image.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.ftruncate(fd, size_bytes)  # sparse
            finally:
                os.close(fd)
            _run(mkfs_command(tmp))
            os.replace(tmp, image)
        _run(mount_command(image, home))
        lost = home / "lost+found"
        if lost.is_dir() and not any(lost.iterdir()):
            lost.rmdir()
    os.chown(home, uid, gid)
    os.chmod(home, 0o700)
    return home


def unmount(home: Path) -> bool:
    """Unmount a home if mounted (hub shutdown, tests); True if it was."""
    if not is_mounted(home):
        return False
    _run(["umount", "-l", str(home)])
    return True


DELETED = ".deleted"  # user names start with a letter or digit: never a user's home


def archive(homes_dir: Path, name: str, stamp: str) -> list[Path]:
    """Move the home of a deleted user out of the way; returns where its parts went.

    The home is unmounted, its image moved to ``.images/.deleted/<name>-<stamp>.ext4`` and
    files left in the directory itself (a home without a size limit) to
    ``.deleted/<name>-<stamp>``, both directories 0700 root. A later user of the same name
    then starts with an empty home, and an admin can still restore or remove the old one."""
    home = homes_dir / name
    unmount(home)
    moved = []
    image = image_path(homes_dir, name)
    if image.exists():
        target = homes_dir / IMAGES / DELETED / f"{name}-{stamp}.ext4"
        target.parent.mkdir(mode=0o700, exist_ok=True)
        os.replace(image, target)
        moved.append(target)
    if home.is_dir() and not is_mounted(home):
        if any(home.iterdir()):
            target = homes_dir / DELETED / f"{name}-{stamp}"
            target.parent.mkdir(mode=0o700, exist_ok=True)
            os.chmod(target.parent, 0o700)  # the homes directory may be 0711: no way in
            os.replace(home, target)
            moved.append(target)
        else:
            home.rmdir()
    return moved
