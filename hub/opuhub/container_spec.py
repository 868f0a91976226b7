"""Pure builders for the single-user container: what DockerSpawner is asked to create.

Kept apart from the spawner so the security-relevant parts (capabilities, privileges, devices,
volumes, disk) are plain dicts that tests check without a Docker engine.

Disk: a container must not be able to fill the host's disk, which the hub's databases share.
Its root filesystem is read-only (the writable layer would lie in the host's /var/lib/docker);
/tmp and /var/tmp are size-limited tmpfs (memory, counted in the container's memory limit); its
log (what reaches the server's stdout, which the user can write to) is rotated; the home is a
size-limited filesystem when the hub can make one (see :mod:`opuhub.docker_homes`).

Deployers may add their own ``extra_host_config`` / ``extra_create_kwargs``; those are *merged*
with the hardening (:func:`merge_host_config`, :func:`merge_create_kwargs`), never substituted
for it, and settings that would weaken it are refused with :class:`UnsafeContainerConfig`.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping

HOME = "/home/jovyan"
CONTAINER_DEVICE = "/dev/opu0"
DOCKER_SOCKETS = ("/var/run/docker.sock", "/run/docker.sock")
# Host paths never bound into a user container, even below an allowed path: the host's
# configuration, kernel interfaces, devices, runtime sockets and Docker's own data.
DENIED_HOST_PATHS = (
    "/boot", "/dev", "/etc", "/proc", "/root", "/run", "/sys",
    "/var/lib/containerd", "/var/lib/docker", "/var/run",
)
# Writable scratch directories on a read-only root filesystem (tmpfs, size-limited).
TMP_DIRS = ("/tmp", "/var/tmp")
DEFAULT_TMP_BYTES = 512 * 1024**2
# Log drivers that keep the log in files under the engine's data directory (the host's disk).
FILE_LOG_DRIVERS = ("json-file", "local")
DEFAULT_LOG_MAX_SIZE = "10m"
DEFAULT_LOG_MAX_FILES = 2


def tmpfs_options(size_bytes: int) -> str:
    """Mount options of a scratch tmpfs: world-writable with the sticky bit, like /tmp; no
    setuid or device files; exec allowed (build tools run helpers from /tmp)."""
    if size_bytes <= 0:
        raise ValueError(f"a tmpfs size must be > 0 bytes, got {size_bytes}")
    return f"size={int(size_bytes)},mode=1777,nosuid,nodev,exec"


def log_config(max_size: str = DEFAULT_LOG_MAX_SIZE, max_files: int = DEFAULT_LOG_MAX_FILES) -> dict:
    """The container's log, rotated: a user can write to the server's stdout (/proc/1/fd/1)
    and would otherwise grow a file on the host's disk without end."""
    if max_files < 1:
        raise ValueError(f"log_max_files must be >= 1, got {max_files}")
    return {"type": "json-file", "config": {"max-size": str(max_size), "max-file": str(max_files)}}


def host_config(
    pids_limit: int,
    device: str | None = None,
    container_device: str = CONTAINER_DEVICE,
    device_gid: int | None = None,
    tmp_bytes: int = DEFAULT_TMP_BYTES,
    log: dict | None = None,
) -> dict:
    """Docker host config for one user's container.

    Every container: no capabilities, no privilege escalation (setuid binaries stay
    unprivileged), a pids limit against fork bombs, a read-only root filesystem with
    ``tmp_bytes`` of tmpfs on each of /tmp and /var/tmp, a rotated log (``log``, default
    :func:`log_config`). Only the lease holder's container gets the device, plus the device
    node's group so the non-root user may open it.
    """
    if pids_limit <= 0:
        raise ValueError(f"pids_limit must be > 0, got {pids_limit}")
    config = {
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "pids_limit": int(pids_limit),
        "privileged": False,
        "read_only": True,
        "tmpfs": {path: tmpfs_options(tmp_bytes) for path in TMP_DIRS},
        "log_config": log or log_config(),
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


def home_bind(binds: dict, host_home: str) -> dict:
    """``binds`` (DockerSpawner's ``{source: {"bind": target, "mode": m}}``) with whatever was
    mounted on the home replaced by the host directory ``host_home`` (a size-limited home)."""
    result = {source: bind for source, bind in binds.items() if bind.get("bind") != HOME}
    result[str(host_home)] = {"bind": HOME, "mode": "rw"}
    return result


def home_volume_name(binds: dict) -> str | None:
    """The named volume DockerSpawner mounts on the home, if any (None: a host path or none)."""
    for source, bind in binds.items():
        if bind.get("bind") == HOME and not str(source).startswith("/"):
            return str(source)
    return None


def check_volumes(volumes: dict, allowed_host_paths=()) -> dict:
    """Refuse ``volumes`` that hand the Docker socket (root on the host) or a host path outside
    ``allowed_host_paths`` to users. Named volumes (no leading '/') are fine."""
    for source, target in volumes.items():
        bind = target.get("bind", "") if isinstance(target, dict) else str(target)
        if _is_docker_socket(bind):
            raise UnsafeContainerConfig(
                f"mounting the Docker socket into user containers is not allowed: {source}")
        problem = host_path_problem(str(source), allowed_host_paths)
        if problem:
            raise UnsafeContainerConfig(f"volumes[{source!r}] is refused: {problem}")
    return volumes


def singleuser_command() -> list[str]:
    """What the image must be able to run (on PATH, as uid 1000)."""
    return ["jupyterhub-singleuser"]


# --- deployer settings, merged with the hardening ------------------------------------------------


class UnsafeContainerConfig(ValueError):
    """A deployer setting that would undo part of the container hardening (the message names
    the setting, why it is refused and what to do instead)."""


def _is_docker_socket(path: str) -> bool:
    path = str(path).rstrip("/")
    return path in DOCKER_SOCKETS or path.endswith("docker.sock")


def _under(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def host_path_problem(source: str, allowed_host_paths=()) -> str | None:
    """Why ``source`` may not be bound into a user container (None: it may).

    Named volumes (no leading '/') are Docker's and fine. A host path must lie below one of
    ``allowed_host_paths`` and never on the Docker socket or a :data:`DENIED_HOST_PATHS` entry.
    Paths are compared after normalisation ('..' resolved); symlinks on the host are not
    followed, so allow only directories that users cannot write links into from outside.
    """
    if not source.startswith("/"):
        return None
    if _is_docker_socket(source):
        return "the Docker socket is root on the host"
    path = posixpath.normpath(source)
    if path == "/" or any(_under(path, denied) for denied in DENIED_HOST_PATHS):
        return f"{path} is a system path of the host"
    if not any(_under(path, posixpath.normpath(allowed)) for allowed in allowed_host_paths):
        return (f"host path {path} is outside OPUDockerSpawner.allowed_host_paths "
                f"({list(allowed_host_paths)}); add its directory there if users may see it")
    return None


def check_allowed_host_paths(paths) -> list[str]:
    for path in paths:
        if not str(path).startswith("/") or posixpath.normpath(path) == "/":
            raise UnsafeContainerConfig(
                f"allowed_host_paths entries must be absolute directories other than '/': {path!r}")
    return list(paths)


_SHARED_NAMESPACE = {
    "pid_mode": "process",
    "ipc_mode": "IPC (shared memory)",
    "uts_mode": "host name",
    "userns_mode": "user",
    "cgroupns": "cgroup",
}

_ALWAYS_REFUSED = {
    "cap_add": "it gives capabilities back (user containers run with none)",
    "devices": "only the OPU lease holder's container gets a device, and the spawner adds it",
    "device_cgroup_rules": "it lets the container open host device nodes",
    "volumes_from": "it mounts another container's volumes (another user's home)",
    "cgroup_parent": "it moves the container out of the cgroup where Docker sets its limits",
    "sysctls": "user containers do not change kernel parameters",
    "network_mode": "set DockerSpawner.network_name instead (network_name='host' is supported)",
}

_BOOLEAN_REFUSED = {
    "privileged": "a privileged container has every capability and every host device",
    "oom_kill_disable": "a container at its memory limit would hang instead of being killed",
}


def _security_opt_problem(option) -> str | None:
    text = str(option)
    name, _, value = text.replace("=", ":", 1).partition(":")
    name, value = name.strip().lower(), value.strip().lower()
    if name == "no-new-privileges":
        return None if value in ("", "true") else "setuid programs would regain privileges"
    if name == "apparmor":
        return "the container would run without AppArmor" if value == "unconfined" else None
    if name == "label":
        if value in ("disable", "type:spc_t"):
            return "the container would run without SELinux confinement"
        return None
    if name == "seccomp":
        return "the engine's default seccomp profile stays (unconfined or custom profiles are refused)"
    return "unknown security option (allowed: no-new-privileges, apparmor=<profile>, label=<...>)"


def _bind_sources(binds) -> list[str]:
    if isinstance(binds, Mapping):
        return [str(source) for source in binds]
    if isinstance(binds, list | tuple):
        return [str(entry).split(":", 1)[0] for entry in binds]
    raise UnsafeContainerConfig(f"binds must be a dict or a list, got {type(binds).__name__}")


def _mount_problem(mount, allowed_host_paths) -> str | None:
    """One entry of ``mounts``: a docker.types.Mount (CamelCase), DockerSpawner's dict
    (snake_case) or a 'source:target[:mode]' string."""
    if isinstance(mount, str):
        return host_path_problem(mount.split(":", 1)[0], allowed_host_paths)
    if not isinstance(mount, Mapping):
        return f"unknown mount {mount!r}"
    kind = str(mount.get("Type") or mount.get("type") or "volume").lower()
    source = str(mount.get("Source") or mount.get("source") or "")
    if kind == "bind":
        return host_path_problem(source if source.startswith("/") else "/" + source,
                                 allowed_host_paths)
    if kind == "volume":
        options = mount.get("VolumeOptions") or {}
        if options.get("DriverConfig") or mount.get("driver_config"):
            # the local driver's options (o=bind, device=/...) mount any host path
            return "volume driver options can mount any host path"
        return None
    if kind == "tmpfs":
        return None
    return f"mount type {kind!r} is not allowed"


def check_host_config(config, allowed_host_paths=()) -> dict:
    """Refuse deployer host-config settings that would weaken the hardening.

    Returns ``config`` as a dict; raises :class:`UnsafeContainerConfig` naming every refused
    key and why. Settings that do not touch isolation (shm_size, ulimits, tmpfs, extra_hosts,
    dns, memory and CPU knobs, GPUs through device_requests, ...) pass; ``read_only`` may only
    stay on, and a ``log_config`` that writes files must be rotated (see
    :func:`merge_host_config`).
    """
    if config is None:
        return {}
    if not isinstance(config, Mapping):
        raise UnsafeContainerConfig(
            f"extra_host_config must be a dict (or return one), got {type(config).__name__}")
    problems = []
    for key, value in config.items():
        why = None
        if key in _ALWAYS_REFUSED:
            why = _ALWAYS_REFUSED[key] if value not in (None, [], {}, "") else None
        elif key in _BOOLEAN_REFUSED:
            why = _BOOLEAN_REFUSED[key] if value else None
        elif key in _SHARED_NAMESPACE:
            mode = str(value or "").lower()
            if mode == "host" or mode.startswith("container:"):
                what = "the host's" if mode == "host" else "another container's"
                why = f"it shares {what} {_SHARED_NAMESPACE[key]} namespace"
        elif key == "security_opt":
            bad = [(opt, _security_opt_problem(opt)) for opt in (value or [])]
            why = "; ".join(f"{opt!r}: {reason}" for opt, reason in bad if reason) or None
        elif key == "pids_limit":
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                why = "it lifts the process limit (fork bombs); set OPUDockerSpawner.pids_limit"
        elif key == "group_add":
            if any(str(group) in ("0", "root") for group in (value or [])):
                why = "the root group is never added"
        elif key == "binds":
            found = [(s, host_path_problem(s, allowed_host_paths)) for s in _bind_sources(value)]
            why = "; ".join(reason for _, reason in found if reason) or None
        elif key == "mounts":
            found = [_mount_problem(m, allowed_host_paths) for m in (value or [])]
            why = "; ".join(reason for reason in found if reason) or None
        elif key == "read_only":
            if not value:
                why = ("the root filesystem stays read-only: its writable layer lies on the "
                       "host's disk, which the hub's databases share; add a tmpfs entry or a "
                       "volume for a path that must be writable")
        elif key == "tmpfs":
            why = _tmpfs_problem(value)
        elif key == "log_config":
            why = _log_config_problem(value)
        if why:
            problems.append(f"{key}={value!r}: {why}")
    if problems:
        raise UnsafeContainerConfig(
            "extra_host_config would weaken the isolation of user containers, refused: "
            + " | ".join(problems))
    return dict(config)


def _tmpfs_entries(value) -> dict:
    """Docker's ``tmpfs`` setting as {path: options}: a dict, or a list of 'path[:options]'."""
    if isinstance(value, Mapping):
        return {str(path): str(options or "") for path, options in value.items()}
    if isinstance(value, list | tuple):
        return dict((entry.split(":", 1) + [""])[:2] for entry in map(str, value))
    raise UnsafeContainerConfig(f"tmpfs must be a dict or a list, got {type(value).__name__}")


def _tmpfs_problem(value) -> str | None:
    try:
        _tmpfs_entries(value or {})
    except UnsafeContainerConfig as e:
        return str(e)
    return None


def _log_options(value) -> tuple[str, dict]:
    kind = str(value.get("type") or value.get("Type") or "")
    options = value.get("config") or value.get("Config") or {}
    return kind, dict(options)


def _log_config_problem(value) -> str | None:
    if value is not None and not isinstance(value, Mapping):
        return f"log_config must be a dict, got {type(value).__name__}"
    return None


def _merge_tmpfs(ours: dict, theirs) -> dict:
    """Ours plus the deployer's scratch paths. The deployer may size /tmp and /var/tmp
    differently (tmpfs is memory, counted in the container's limit, never the host's disk);
    an entry of theirs without a size gets ours, so none is unbounded."""
    merged = dict(ours)
    size = next((opt for opt in next(iter(ours.values()), "").split(",")
                 if opt.startswith("size=")), None)
    for path, options in _tmpfs_entries(theirs).items():
        if size and not any(opt.strip().startswith("size=") for opt in options.split(",")):
            options = ",".join(filter(None, [options, size]))
        merged[path] = options
    return merged


def _merge_log_config(ours: dict, theirs) -> dict:
    """The deployer may choose the log driver; a driver writing files under the engine's data
    directory (json-file, local, or the daemon's default) is rotated with our sizes unless the
    deployer gives their own max-size."""
    kind, options = _log_options(theirs)
    if kind in ("", *FILE_LOG_DRIVERS):
        for name, value in ours["config"].items():
            options.setdefault(name, value)
        return {"type": kind or ours["type"], "config": options}
    return {"type": kind, "config": options}


# keys of ours that a deployer's value is combined with rather than replaced by
_UNION_KEYS = ("cap_drop", "security_opt", "group_add")


def merge_host_config(deployer, hardening: dict, allowed_host_paths=()) -> dict:
    """The deployer's host config plus ours; ours wins on every hardening key.

    cap_drop, security_opt and group_add are unions (ours first); pids_limit is the stricter
    of the two; privileged, read_only and devices are ours (devices: the lease holder's only);
    tmpfs entries of the deployer are added (theirs may resize /tmp and /var/tmp, every entry
    has a size); a deployer's log driver is kept, rotated if it writes files.
    """
    merged = check_host_config(deployer, allowed_host_paths)
    for key, ours in hardening.items():
        theirs = merged.get(key)
        if key in _UNION_KEYS and theirs:
            merged[key] = list(ours) + [item for item in theirs if item not in ours]
        elif key == "pids_limit" and theirs:
            merged[key] = min(int(ours), int(theirs))
        elif key == "tmpfs" and theirs:
            merged[key] = _merge_tmpfs(ours, theirs)
        elif key == "log_config" and theirs:
            merged[key] = _merge_log_config(ours, theirs)
        else:
            merged[key] = ours
    return merged


def _is_root_user(user) -> bool:
    name = str(user).split(":", 1)[0].strip()
    return name in ("0", "root")


def check_create_kwargs(kwargs) -> dict:
    """Refuse deployer ``docker create`` arguments that would bypass the hardening."""
    if kwargs is None:
        return {}
    if not isinstance(kwargs, Mapping):
        raise UnsafeContainerConfig(
            f"extra_create_kwargs must be a dict (or return one), got {type(kwargs).__name__}")
    problems = []
    if "user" in kwargs and _is_root_user(kwargs["user"]):
        problems.append(f"user={kwargs['user']!r}: user containers never run as root")
    if "host_config" in kwargs:
        problems.append("host_config: put host settings in extra_host_config, where they are "
                        "checked and merged with the hardening")
    if "networking_config" in kwargs:
        problems.append("networking_config: set DockerSpawner.network_name instead")
    if problems:
        raise UnsafeContainerConfig(
            "extra_create_kwargs would weaken the isolation of user containers, refused: "
            + " | ".join(problems))
    return dict(kwargs)


def merge_create_kwargs(deployer, hardening: dict) -> dict:
    """The deployer's ``docker create`` arguments plus ours. The user is ours: another one is
    refused (set OPUDockerSpawner.container_uid / container_gid). Other keys of ours (the
    working directory) are defaults the deployer may change."""
    merged = check_create_kwargs(deployer)
    theirs = merged.get("user")
    if theirs is not None and str(theirs) != hardening["user"]:
        raise UnsafeContainerConfig(
            f"extra_create_kwargs user={theirs!r} is refused: containers run as "
            f"{hardening['user']}; set OPUDockerSpawner.container_uid/container_gid instead")
    return {**hardening, **merged, "user": hardening["user"]}
