"""Prepare this machine for the hub: the I/O that configuring implies, done in one place.

:func:`prepare_host` is idempotent and returns :class:`HostFacts`, everything
:func:`opuhub.hubconfig.configure` needs to know about the machine; ``configure`` itself only
writes config. It runs in the hub process (``hub/jupyterhub_config.py``), and the same function
runs beforehand, where errors are easier to read, for ``make run`` (``opuhub.run``), for the hub
image and for Ansible (``python -m opuhub.host``):

- the state directory (0700) and its secrets (0600, generated once), and the hub database file
  created 0600 (SQLite would create it world-readable);
- which spawner runs (a Docker probe), and the record that refuses a change hiding users' files;
- the Docker user network and its gateway, where containers reach the hub;
- configurable-http-proxy (npm installs it when missing);
- the OPU device nodes, the OPU kernel's presence, the folder of deployer config files;
- the hub process's open-files limit (a socket per connection).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from . import secrets, spawner_kind
from .devices import detect_devices
from .settings import Settings, SettingsError, settings_from_env
from .spawner_choice import SpawnerChoice, choose_spawner, probe_docker

HUB_DB = "jupyterhub.sqlite"
LEASE_DB = "opu_leases.sqlite"


@dataclass(frozen=True)
class HostFacts:
    """What the machine holds, as :func:`prepare_host` found or made it."""

    secrets: dict[str, str]
    choice: SpawnerChoice
    chp: str  # configurable-http-proxy's command
    devices: list[str]  # OPUHUB_DEVICES, or the nodes present
    hub_bind_url: str  # where the hub listens (the Docker network's gateway by default)
    default_kernel: str | None = "opu"  # the local servers' default kernel, when installed
    config_files: list[Path] = field(default_factory=list)  # deployer additions, in load order
    created: list[str] = field(default_factory=list)  # what this call made (else: all there)


def lease_db_path(settings: Settings) -> Path:
    return settings.state_dir / LEASE_DB


def hub_db_path(settings: Settings) -> Path:
    return settings.state_dir / HUB_DB


def docker_gateway(network: str, created: list[str] | None = None) -> str:
    """Create the user network if needed; return its gateway (the host as containers see it)."""
    import docker

    client = docker.from_env(timeout=10)
    try:
        try:
            net = client.networks.get(network)
        except docker.errors.NotFound:
            log(f"creating Docker network {network}")
            net = client.networks.create(network, driver="bridge")
            net.reload()
            if created is not None:
                created.append(f"Docker network {network}")
        return net.attrs["IPAM"]["Config"][0]["Gateway"]
    finally:
        client.close()


def local_default_kernel() -> str | None:
    """'opu' when the OPU kernel is installed in this environment."""
    try:
        from jupyter_client.kernelspec import KernelSpecManager

        return "opu" if "opu" in KernelSpecManager().find_kernel_specs() else None
    except Exception:
        return None


def raise_open_files_limit() -> None:
    """The hub and its proxy hold a socket per connection; users get far fewer each
    (opuhub.sandbox --nofile), so a connection flood from one of them cannot starve the hub."""
    import resource

    try:
        ceiling = int(Path("/proc/sys/fs/nr_open").read_text())
    except (OSError, ValueError):
        ceiling = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < ceiling:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (ceiling, max(hard, ceiling)))
        except (ValueError, OSError):  # no CAP_SYS_RESOURCE: as far as the hard limit goes
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class UnsafeConfigFile(SettingsError):
    """A deployer config file others could have written: loading it would run their code."""


def config_files(config_dir: Path) -> list[Path]:
    """``config_dir/*.py`` in name order, each checked: a file the hub runs must not be
    writable by anyone but root and the hub's own user (nor its folder)."""
    if not config_dir.is_dir():
        return []
    trusted = {0, os.geteuid()}
    found = sorted(path for path in config_dir.glob("*.py") if path.is_file())
    for path in [config_dir, *found]:
        st = path.stat()
        if st.st_uid not in trusted or st.st_mode & 0o022:
            raise UnsafeConfigFile(
                f"{path} belongs to uid {st.st_uid} with mode {st.st_mode & 0o777:o}: the hub "
                f"runs these files, so they and {config_dir} must belong to root or the hub's "
                "user and not be writable by group or others (chmod go-w)")
    return found


def prepare_host(settings: Settings, chp: str | None = None) -> HostFacts:
    """Do the host's side of ``settings`` (idempotent) and return what configuring needs."""
    from .proxy import ensure_chp
    from .shared_opu import SECRET_FILE, broker_secret

    state = settings.state_dir
    db_file = hub_db_path(settings)
    names = secrets.NAMES + ((SECRET_FILE,) if settings.shared_opu else ())
    made_here = [state, *(state / name for name in names), db_file]
    missing = [path for path in made_here if not path.exists()]
    secrets.ensure_state_dir(state)
    state_secrets = secrets.ensure_secrets(state)
    if settings.shared_opu:
        state_secrets[SECRET_FILE] = broker_secret(state)
    if not db_file.exists():  # SQLite would create it world-readable (token hashes, state)
        os.close(os.open(db_file, os.O_WRONLY | os.O_CREAT, 0o600))
    created = [str(path) for path in missing]

    images = [settings.image, settings.hardware_image or settings.image]
    probe = probe_docker(images) if settings.spawner == "auto" else None
    choice = choose_spawner(settings.spawner, probe)
    spawner_kind.enforce(settings, choice)  # a kind change must not hide users' files

    hub_bind_url = settings.hub_bind_url or "http://127.0.0.1:8081"
    if choice.is_docker and settings.docker_network != "host":
        try:
            gateway = docker_gateway(settings.docker_network, created)
        except Exception as e:
            if not settings.hub_bind_url:
                raise
            # the hub is reached by name (e.g. a hub container): it can start, spawns wait
            log(f"warning: cannot check the Docker network {settings.docker_network} "
                f"({type(e).__name__}: {e}); spawns fail until the engine answers")
        else:
            if not settings.hub_bind_url:
                # containers on the user network reach the hub at the network's gateway
                hub_bind_url = f"http://{gateway}:{settings.hub_port}"

    raise_open_files_limit()
    return HostFacts(
        secrets=state_secrets,
        choice=choice,
        chp=chp or ensure_chp(quiet=True),
        devices=list(settings.devices) if settings.devices is not None else detect_devices(),
        hub_bind_url=hub_bind_url,
        default_kernel="opu" if choice.is_docker else local_default_kernel(),
        config_files=config_files(settings.config_dir),
        created=created,
    )


def log(message: str) -> None:
    # the hub's logging is not set up yet while its config file runs
    print(f"[opuhub] {message}", file=sys.stderr, flush=True)


def main() -> int:
    """``python -m opuhub.host``: prepare this machine from the OPUHUB_* environment and say
    what was found (Ansible and the hub image run it before the hub starts)."""
    try:
        settings = settings_from_env()
        facts = prepare_host(settings)
    except SettingsError as e:
        print(f"opuhub: {e}", file=sys.stderr)
        return 2
    except spawner_kind.SpawnerKindChanged as e:
        return int(e.code or 1)
    except Exception as e:  # e.g. npm failing, the Docker engine refusing the network
        print(f"opuhub: cannot prepare this host: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    for what in facts.created:
        print(f"created: {what}")
    print(f"state: {settings.state_dir}")
    print(f"spawner: {facts.choice.reason}")
    print(f"hub listens on: {facts.hub_bind_url}")
    print(f"proxy: {facts.chp}")
    print(f"devices: {', '.join(facts.devices) or 'none (simulator only)'}")
    print(f"deployer config: {', '.join(map(str, facts.config_files)) or 'none'} "
          f"(in {settings.config_dir})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
