"""Pick the spawner: Docker containers when an engine answers, else local processes.

``probe_docker`` does the I/O; ``choose_spawner`` is the pure decision, with the reason the
hub logs at startup. It fails closed: an engine without the image still means Docker (spawns
are refused with "build it with `make images`" until it exists), never a silent fall-back to
local processes; and a fall-back for lack of an engine serves the hub's admins only. Local
processes for everyone (one Unix account each) only when asked for: ``OPUHUB_SPAWNER=local``.
"""

from __future__ import annotations

from dataclasses import dataclass

DOCKER = "opuhub.spawner.OPUDockerSpawner"
LOCAL = "opuhub.local_spawner.OPULocalSpawner"


@dataclass(frozen=True)
class DockerProbe:
    reachable: bool
    detail: str
    missing_images: tuple[str, ...] = ()


@dataclass(frozen=True)
class SpawnerChoice:
    class_path: str
    reason: str
    multi_user: bool = True  # local processes: every user (own account), or admins only

    @property
    def is_docker(self) -> bool:
        return self.class_path == DOCKER


def probe_docker(images: list[str], timeout: float = 3.0) -> DockerProbe:
    try:
        import docker

        client = docker.from_env(timeout=timeout)
        client.ping()
        version = client.version().get("Version", "?")
    except Exception as e:  # any failure means "not usable", with the reason kept
        return DockerProbe(False, f"{type(e).__name__}: {e}".strip()[:300])
    missing = []
    for image in sorted(set(images)):
        try:
            client.images.get(image)
        except Exception:
            missing.append(image)
    client.close()
    return DockerProbe(True, f"Docker engine {version}", tuple(missing))


def choose_spawner(requested: str, probe: DockerProbe | None) -> SpawnerChoice:
    """``requested`` is 'docker', 'local' or 'auto' (OPUHUB_SPAWNER)."""
    if requested == "local":
        return SpawnerChoice(LOCAL, "local processes, one Unix account per user: OPUHUB_SPAWNER=local")
    if requested == "docker":
        return SpawnerChoice(DOCKER, "Docker containers: OPUHUB_SPAWNER=docker")
    if requested != "auto":
        raise ValueError(f"spawner must be auto, docker or local, got {requested!r}")
    if probe is None or not probe.reachable:
        detail = probe.detail if probe else "not probed"
        return SpawnerChoice(
            LOCAL,
            f"local processes for admins only: no Docker engine reachable ({detail}); "
            "OPUHUB_SPAWNER=local gives every user an account of their own",
            multi_user=False,
        )
    if probe.missing_images:
        return SpawnerChoice(
            DOCKER,
            f"Docker containers: {probe.detail} is reachable but image(s) "
            f"{', '.join(probe.missing_images)} are not built: spawns are refused until "
            "`make images` builds them",
        )
    return SpawnerChoice(DOCKER, f"Docker containers: {probe.detail} reachable, images present")
