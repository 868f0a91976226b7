"""Remember where users' files live, and refuse a start that would hide them.

Local servers keep each home under the homes directory; containers keep it there too when
the hub can give them size-limited host homes (:mod:`opuhub.docker_homes`), else in a named
volume ``opuhub-home-<user>``. A hub that starts with homes elsewhere than last time (Docker
stopped or back, an image missing, ``OPUHUB_SPAWNER`` or ``OPUHUB_HOME_QUOTA`` changed) would
give every user an empty home while their files sit where it never looks. So each start
records its spawner kind and where homes live in ``state/spawner-kind``; a start whose homes
live elsewhere, while homes exist in the old place, stops with a message that says where the
files are and how to carry them over (or how to start as before).

``refusal`` is the pure decision; ``enforce`` does the I/O (called from host.prepare_host).
A deployer who overrides ``OPUDockerSpawner.home_storage`` after ``configure`` is not seen.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from . import usernames
from .settings import Settings
from .spawner_choice import SpawnerChoice

RECORD = "spawner-kind"
DOCKER = "docker"
LOCAL = "local"
HOST = "host"  # homes under homes_dir (local servers; containers with host homes)
VOLUME = "volume"  # Docker named volumes
VOLUME_PREFIX = "opuhub-home-"
SHOWN = 8  # names listed in the message


class SpawnerKindChanged(SystemExit):
    """Raised from the config file: the hub prints the message and exits (code 1)."""


@dataclass(frozen=True)
class Placement:
    """Where servers run (``docker``/``local``) and where their homes live (``host``/``volume``)."""

    spawner: str
    homes: str

    def __str__(self) -> str:
        return f"{self.spawner} {self.homes}"

    @classmethod
    def parse(cls, text: str) -> Placement | None:
        words = text.split()
        if len(words) == 1 and words[0] in (DOCKER, LOCAL):  # spawner only: homes by default
            return cls(words[0], VOLUME if words[0] == DOCKER else HOST)
        if len(words) == 2 and words[0] in (DOCKER, LOCAL) and words[1] in (HOST, VOLUME):
            return cls(*words)
        return None


def _names(names: list[str]) -> str:
    shown = ", ".join(names[:SHOWN])
    return shown + (f" and {len(names) - SHOWN} more" if len(names) > SHOWN else "")


def _describe(placement: Placement, homes_dir: Path) -> str:
    servers = "Docker containers" if placement.spawner == DOCKER else "local processes"
    homes = (f"homes under {homes_dir}/" if placement.homes == HOST
             else f"homes in Docker volumes {VOLUME_PREFIX}<user>")
    return f"{servers} with {homes}"


def refusal(recorded: Placement | None, now: Placement, state_dir: Path, homes_dir: Path,
            image: str, local_homes: list[str], docker_homes: list[str] | None,
            why_now: str = "") -> str | None:
    """Why this start must not go on, or None (pure). ``local_homes``: homes found under
    ``homes_dir``; ``docker_homes``: users with a home volume, None when the Docker engine
    cannot be asked (then the volumes may exist: refuse rather than hide them)."""
    if recorded is None or recorded.homes == now.homes:
        return None
    if recorded.homes == HOST and not local_homes:
        return None
    if recorded.homes == VOLUME and docker_homes is not None and not docker_homes:
        return None
    record = state_dir / RECORD
    before = (f"start with OPUHUB_SPAWNER={recorded.spawner}" if recorded.spawner != now.spawner
              else "start as before")
    head = (f"this hub ran {_describe(recorded, homes_dir)} until now; this start would run "
            f"{_describe(now, homes_dir)}{f' ({why_now})' if why_now else ''}, so users would "
            "find empty homes.")
    if recorded.homes == HOST:
        return (
            f"{head} Their files are in {homes_dir}/ ({_names(local_homes)}; with home quotas "
            f"the files of home NAME are in the image {homes_dir}/.images/NAME.ext4: "
            f"`mount -o loop` it on {homes_dir}/NAME first). To carry them over, for each "
            f"home NAME:\n"
            f"  docker volume create {VOLUME_PREFIX}NAME\n"
            f"  docker run --rm --user 0 -v {homes_dir}/NAME:/from:ro "
            f"-v {VOLUME_PREFIX}NAME:/to {image} sh -c 'cp -a /from/. /to/ && "
            f"chown -R 1000:1000 /to'\n"
            f"then delete {record} and start again. To keep the files where they are, {before}."
        )
    where = (f"Docker volumes {_names([VOLUME_PREFIX + n for n in docker_homes])}"
             if docker_homes else
             f"Docker volumes named {VOLUME_PREFIX}<user>, which cannot be listed now because "
             f"the Docker engine is not reachable (start it and the hub uses containers again)")
    owner = (f"{usernames.UNIX_PREFIX}NAME:" if now.spawner == LOCAL else "1000:1000")
    return (
        f"{head} Their files are in {where}. To carry them over: delete {record}, start the "
        f"hub, let each user start their server once (it makes {homes_dir}/NAME), then for "
        f"each volume {VOLUME_PREFIX}NAME:\n"
        f"  docker run --rm --user 0 -v {VOLUME_PREFIX}NAME:/from:ro -v {homes_dir}/NAME:/to "
        f"{image} cp -a /from/. /to/\n"
        f"  chown -R {owner} {homes_dir}/NAME\n"
        f"To keep the files where they are, {before}."
    )


# --- I/O -----------------------------------------------------------------------------------------

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


def placement_now(settings: Settings, choice: SpawnerChoice) -> tuple[Placement, str]:
    """This start's placement, and the reason for where container homes live."""
    if not choice.is_docker:
        return Placement(LOCAL, HOST), ""
    from .cgroups import parse_bytes
    from .docker_homes import AUTO, storage

    where = storage(AUTO, parse_bytes(settings.home_quota), settings.home_quota,
                    str(settings.homes_dir))
    return Placement(DOCKER, HOST if where.on_host else VOLUME), where.reason


def read_record(state_dir: Path) -> Placement | None:
    try:
        return Placement.parse((state_dir / RECORD).read_text())
    except OSError:
        return None


def enforce(settings: Settings, choice: SpawnerChoice) -> None:
    """Refuse (SpawnerKindChanged) or record this start's placement."""
    state = settings.state_dir
    now, why = placement_now(settings, choice)
    recorded = read_record(state)
    if recorded is not None and recorded.homes != now.homes:
        message = refusal(
            recorded, now, state, settings.homes_dir, settings.image,
            local_homes(settings.homes_dir) if recorded.homes == HOST else [],
            docker_homes() if recorded.homes == VOLUME else [],
            why,
        )
        if message:
            print(f"[opuhub] refusing to start: {message}", file=sys.stderr, flush=True)
            raise SpawnerKindChanged(1)
    if recorded != now:
        (state / RECORD).write_text(f"{now}\n")
