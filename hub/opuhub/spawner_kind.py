"""Remember where users' files live, and refuse a start that would hide them.

Docker containers keep each home in a named volume (``opuhub-home-<user>``); local processes
keep them under the homes directory. A hub that starts with the other kind (Docker stopped, an
image missing, ``OPUHUB_SPAWNER`` changed) would give every user an empty home while their
files sit where the new spawner never looks. So the kind is recorded in ``state/spawner-kind``
at every start, and a start with another kind while the old kind's homes exist stops with a
message that says where the files are and how to carry them over.

``refusal`` is the pure decision; ``enforce`` does the I/O (called from hubconfig.configure).
"""

from __future__ import annotations

import sys
from pathlib import Path

from . import usernames
from .settings import Settings
from .spawner_choice import SpawnerChoice

RECORD = "spawner-kind"
DOCKER = "docker"
LOCAL = "local"
VOLUME_PREFIX = "opuhub-home-"
SHOWN = 8  # names listed in the message


class SpawnerKindChanged(SystemExit):
    """Raised from the config file: the hub prints the message and exits (code 1)."""


def kind_of(choice: SpawnerChoice) -> str:
    return DOCKER if choice.is_docker else LOCAL


def _names(names: list[str]) -> str:
    shown = ", ".join(names[:SHOWN])
    return shown + (f" and {len(names) - SHOWN} more" if len(names) > SHOWN else "")


def refusal(recorded: str | None, kind: str, state_dir: Path, homes_dir: Path, image: str,
            local_homes: list[str], docker_homes: list[str] | None) -> str | None:
    """Why this start must not go on, or None. ``docker_homes`` is None when the Docker
    engine cannot be asked (then the volumes may exist: refuse rather than hide them)."""
    if recorded in (None, kind):
        return None
    record = state_dir / RECORD
    accept = (f"When the files are carried over (or none need keeping), delete {record} and "
              f"start again. To go on as before, start with OPUHUB_SPAWNER={recorded}.")
    if recorded == LOCAL:
        if not local_homes:
            return None
        return (
            f"This hub ran users' servers as local processes until now; this start would use "
            f"Docker containers, whose homes are Docker volumes ({VOLUME_PREFIX}<user>), so "
            f"users would find empty homes. Their files are in {homes_dir}/ "
            f"({_names(local_homes)}; with home quotas each home NAME is the filesystem image "
            f"{homes_dir}/.images/NAME.ext4: `mount -o loop` it on {homes_dir}/NAME first). "
            f"To carry them over, for each home NAME:\n"
            f"  docker volume create {VOLUME_PREFIX}NAME\n"
            f"  docker run --rm --user 0 -v {homes_dir}/NAME:/from:ro "
            f"-v {VOLUME_PREFIX}NAME:/to {image} sh -c 'cp -a /from/. /to/ && "
            f"chown -R 1000:1000 /to'\n{accept}"
        )
    if docker_homes is not None and not docker_homes:
        return None
    where = (f"Docker volumes {_names([VOLUME_PREFIX + n for n in docker_homes])}"
             if docker_homes else
             f"Docker volumes named {VOLUME_PREFIX}<user>, which cannot be listed now because "
             f"the Docker engine is not reachable (start it and the hub uses containers again)")
    return (
        f"This hub ran users' servers in Docker containers until now; this start would use "
        f"local processes, whose homes are in {homes_dir}/, so users would find empty homes. "
        f"Their files are in {where}. To carry them over: delete {record}, start the hub, "
        f"let each user start their server once (it makes {homes_dir}/NAME), then for each "
        f"volume {VOLUME_PREFIX}NAME:\n"
        f"  docker run --rm --user 0 -v {VOLUME_PREFIX}NAME:/from:ro -v {homes_dir}/NAME:/to "
        f"{image} cp -a /from/. /to/\n"
        f"  chown -R {usernames.UNIX_PREFIX}NAME: {homes_dir}/NAME\n"
        f"To go on as before, start with OPUHUB_SPAWNER={recorded}."
    )


def local_homes(homes_dir: Path) -> list[str]:
    """Homes under ``homes_dir``: directories, and the filesystem images of homes with a
    quota (opuhub.home_quota), which hold the files while the home is not mounted."""
    names = set()
    try:
        names = {entry.name for entry in homes_dir.iterdir() if not entry.name.startswith(".")}
        names |= {image.name.removesuffix(".ext4")
                  for image in (homes_dir / ".images").glob("*.ext4")}
    except OSError:
        pass
    return sorted(names)


def docker_homes(timeout: float = 3.0) -> list[str] | None:
    """User names with a home volume, or None when the engine cannot be asked."""
    try:
        import docker

        client = docker.from_env(timeout=timeout)
        try:
            volumes = client.volumes.list(filters={"name": VOLUME_PREFIX})
        finally:
            client.close()
    except Exception:
        return None
    return sorted(v.name[len(VOLUME_PREFIX):] for v in volumes if v.name.startswith(VOLUME_PREFIX))


def read_record(state_dir: Path) -> str | None:
    try:
        value = (state_dir / RECORD).read_text().strip()
    except OSError:
        return None
    return value if value in (DOCKER, LOCAL) else None


def enforce(settings: Settings, choice: SpawnerChoice) -> None:
    """Refuse (SpawnerKindChanged) or record this start's spawner kind."""
    state, kind = settings.state_dir, kind_of(choice)
    recorded = read_record(state)
    if recorded not in (None, kind):
        message = refusal(
            recorded, kind, state, settings.homes_dir, settings.image,
            local_homes(settings.homes_dir) if recorded == LOCAL else [],
            docker_homes() if recorded == DOCKER else [],
        )
        if message:
            print(f"[opuhub] refusing to start: {message}", file=sys.stderr, flush=True)
            raise SpawnerKindChanged(1)
    if recorded != kind:
        (state / RECORD).write_text(kind + "\n")
