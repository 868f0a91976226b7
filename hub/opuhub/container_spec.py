"""Pure builders for the single-user container: what DockerSpawner is asked to create.

Kept apart from the spawner so the security-relevant parts (capabilities, privileges, devices,
volumes) are plain dicts that tests check without a Docker engine.
"""

from __future__ import annotations

HOME = "/home/jovyan"
CONTAINER_DEVICE = "/dev/opu0"
DOCKER_SOCKETS = ("/var/run/docker.sock", "/run/docker.sock")


def host_config(
    pids_limit: int,
    device: str | None = None,
    container_device: str = CONTAINER_DEVICE,
    device_gid: int | None = None,
) -> dict:
    """Docker host config for one user's container.

    Every container: no capabilities, no privilege escalation (setuid binaries stay
    unprivileged), a pids limit against fork bombs. Only the lease holder's container gets the
    device, plus the device node's group so the non-root user may open it.
    """
    if pids_limit <= 0:
        raise ValueError(f"pids_limit must be > 0, got {pids_limit}")
    config = {
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "pids_limit": int(pids_limit),
        "privileged": False,
    }
    if device:
        config["devices"] = [f"{device}:{container_device}:rwm"]
        # never the root group: a device owned by root:root needs a udev rule giving it a group
        if device_gid:
            config["group_add"] = [str(device_gid)]
    return config


def create_kwargs(uid: int = 1000, gid: int = 1000) -> dict:
    """Arguments of ``docker create`` beyond image/env/command: run as the non-root user."""
    if uid == 0:
        raise ValueError("single-user containers must not run as root (uid 0)")
    return {"user": f"{uid}:{gid}", "working_dir": HOME}


def home_volume(prefix: str = "opuhub-home-") -> dict:
    """A named volume per user (``{username}`` is expanded by DockerSpawner), mounted on the
    home directory: the container is disposable (remove=True), the files are not."""
    return {prefix + "{username}": HOME}


def check_volumes(volumes: dict) -> dict:
    """Refuse configurations that would hand the Docker socket (root on the host) to users."""
    for source, target in volumes.items():
        bind = target.get("bind", "") if isinstance(target, dict) else str(target)
        for path in (str(source), bind):
            if path.rstrip("/") in DOCKER_SOCKETS or path.endswith("docker.sock"):
                raise ValueError(f"mounting the Docker socket into user containers is not allowed: {source}")
    return volumes


def singleuser_command() -> list[str]:
    """What the image must be able to run (on PATH, as uid 1000)."""
    return ["jupyterhub-singleuser"]
