"""The shared OPU's broker as a container of its own (Docker mode).

With the Docker spawner the broker cannot run beside the hub as a plain process: the hub's
image has no ``opu_kernel``, and the hub's container must not hold the OPU device anyway. So
the hub's managed service ``opu-broker`` runs this module instead, which runs the broker in a
container of the single-user image:

- on the users' Docker network only (kernels reach it by its name, Docker's DNS), listening
  on ``0.0.0.0`` inside it (``127.0.0.1`` with ``network_name="host"``);
- with the served device node passed through to it alone, at the same path (none for the
  simulated OPU), so that the broker's arguments and the lease service name the same node;
- as uid 1000, without capabilities, with no-new-privileges, a read-only root filesystem and
  a small tmpfs, memory and pids limits, a rotated log, no mounts at all (neither the hub's
  state nor the Docker socket);
- labelled :data:`LABEL` (value: the hub's state directory) so that clean-ups find it.

Docker's restart policy stays "no": JupyterHub restarts the service (this runner) when it
exits, and :mod:`opuhub.lifeline` ends it with the hub, so a stopped hub leaves no broker
running. The runner (``python -m opuhub.broker_container [options] -- <broker args>``) removes
a leftover container of the same name, starts a new one with the variables the broker needs
from its own environment (the secret never goes on a command line), copies the container's
log to its stdout, exits with the container's exit code, and stops and removes the container
when it gets SIGTERM or SIGINT.

:func:`container_spec`, :func:`forwarded_env`, :func:`runner_command` and the address helpers
are pure builders, unit-tested without Docker; :func:`run` does the I/O.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time

from .container_spec import log_config, tmpfs_options

DEFAULT_NAME = "opuhub-opu-broker"
LABEL = "opuhub.opu-broker"  # its value: the state directory of the hub that runs the broker
BROKER_MODULE = ["-m", "opu_kernel.broker"]
UID = GID = 1000  # the single-user image's user (jovyan)
DEFAULT_MEM_LIMIT = "2G"  # the simulator's matrix cache is 1 GiB by default (--simulator-cache-mb)
DEFAULT_PIDS_LIMIT = 256  # a few threads of its own, plus BLAS threads (one per core)
DEFAULT_TMP_BYTES = 64 * 1024**2
# seconds between SIGTERM and SIGKILL when the runner is stopped: within the 10 s JupyterHub
# waits after its SIGINT before it sends SIGTERM and then SIGKILL (which would leave the
# container to the next start's clean-up)
DEFAULT_STOP_TIMEOUT = 5
# JupyterHub restarts an exited service at once: a broker that cannot start (no image, a bad
# option) would be restarted in a tight loop, burning a core and flooding the hub's log. A
# failure within MIN_UPTIME_S of the start waits this long before exiting.
DEFAULT_FAILURE_PAUSE = 5.0
MIN_UPTIME_S = 10.0
SECRET_ENV = "OPU_BROKER_SECRET"
# what the broker may need from the service's environment (JupyterHub gives services their
# API token and URL); every OPU_BROKER_* goes too
FORWARDED_ENV = (SECRET_ENV, "JUPYTERHUB_API_TOKEN", "JUPYTERHUB_API_URL",
                 "JUPYTERHUB_SERVICE_NAME")
FORWARDED_PREFIX = "OPU_BROKER_"


class BrokerContainerError(ValueError):
    """A broker container that cannot (or must not) be made as asked; the message says why."""


def container_name(network: str) -> str:
    """The broker's container name: :data:`DEFAULT_NAME` on the default network ``opuhub``,
    ``<network>-opu-broker`` on another (two hubs on one engine, each on a network of its own,
    do not take each other's broker)."""
    if network in ("opuhub", "host", ""):
        return DEFAULT_NAME
    return f"{network}-opu-broker"


def bind_ip(network: str) -> str:
    """Where the broker listens inside its container: everywhere in its own network namespace
    (which is on the users' network only), but only on the loopback when it shares the host's."""
    return "127.0.0.1" if network == "host" else "0.0.0.0"


def broker_url(network: str, port: int, name: str | None = None) -> str:
    """Where users' containers reach the broker: its container name through Docker's DNS on
    the users' network (the host's loopback with host networking)."""
    if network == "host":
        return f"tcp://127.0.0.1:{port}"
    return f"tcp://{name or container_name(network)}:{port}"


def image_for(device: str, image: str, hardware_image: str = "") -> str:
    """The single-user image (it has ``opu_kernel``); the hardware image, which has the vendor
    driver, when a device node is served."""
    return (hardware_image or image) if device else image


def broker_args(command: list[str]) -> list[str]:
    """The broker's arguments from a ``[python, -m, opu_kernel.broker, ...]`` command
    (``opuhub.shared_opu.broker_command``): the container has a python of its own."""
    if len(command) < 3 or list(command[1:3]) != BROKER_MODULE:
        raise BrokerContainerError(f"not a broker command (python -m opu_kernel.broker ...): "
                                   f"{command[:3]!r}")
    return list(command[3:])


def forwarded_env(environ: dict[str, str], hub_api_url: str = "") -> dict[str, str]:
    """What of the runner's environment the broker gets: :data:`FORWARDED_ENV` and every
    ``OPU_BROKER_*``. ``hub_api_url`` replaces JupyterHub's ``JUPYTERHUB_API_URL``, which may
    be a loopback address that the container cannot reach."""
    env = {k: v for k, v in environ.items() if k in FORWARDED_ENV or k.startswith(FORWARDED_PREFIX)}
    if hub_api_url:
        env["JUPYTERHUB_API_URL"] = hub_api_url
    return env


def container_spec(
    image: str,
    args: list[str],
    network: str,
    *,
    name: str = DEFAULT_NAME,
    device: str = "",
    device_gid: int | None = None,
    environment: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    state_dir: str = "",
    mem_limit: str = DEFAULT_MEM_LIMIT,
    pids_limit: int = DEFAULT_PIDS_LIMIT,
    tmp_bytes: int = DEFAULT_TMP_BYTES,
    uid: int = UID,
    gid: int = GID,
) -> dict:
    """Keyword arguments of docker-py's ``client.containers.create`` for the broker.

    ``args`` are the broker's (``--bind=tcp://0.0.0.0:PORT --device=...``); ``device`` the
    host's device node, passed through at the same path (empty: the simulated OPU, no device
    at all), with ``device_gid`` (the node's group, never root's) so that the non-root broker
    may open it. ``environment`` must hold the secret: it never goes into
    ``args``, which ``docker inspect`` and process lists show."""
    env = dict(environment or {})
    secret = env.get(SECRET_ENV, "")
    if not secret:
        raise BrokerContainerError(f"the broker needs its secret: {SECRET_ENV} is not set")
    if any(secret in str(arg) for arg in args):
        raise BrokerContainerError(f"the broker's secret must not be on its command line; "
                                   f"it goes in {SECRET_ENV}")
    if uid == 0:
        raise BrokerContainerError("the broker's container must not run as root (uid 0)")
    if pids_limit <= 0:
        raise BrokerContainerError(f"pids_limit must be > 0, got {pids_limit}")
    if not network:
        raise BrokerContainerError("the broker's container needs the users' Docker network")
    spec = {
        "image": image,
        # the broker itself as the entry point: not the image's server start script, which
        # prepares a home this container does not have
        "entrypoint": ["python", *BROKER_MODULE],
        "command": list(args),
        "name": name,
        "environment": env,
        "labels": {**(labels or {}), LABEL: state_dir},
        "user": f"{uid}:{gid}",
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "privileged": False,
        "read_only": True,
        "tmpfs": {"/tmp": tmpfs_options(tmp_bytes)},
        "mem_limit": mem_limit,
        "memswap_limit": mem_limit,  # no swap on top: the limit is the limit
        "pids_limit": int(pids_limit),
        "log_config": log_config(),
        "restart_policy": {"Name": "no"},  # the runner and JupyterHub restart it, never Docker
        "devices": [],
    }
    if network == "host":
        spec["network_mode"] = "host"
    else:
        spec["network"] = network  # this network only: not Docker's default bridge as well
        spec["hostname"] = name
    if device:
        if not device.startswith("/dev/"):
            raise BrokerContainerError(f"the served device must be a node under /dev/, got {device!r}")
        spec["devices"] = [f"{device}:{device}:rwm"]
        if device_gid:  # never the root group: give the node a group of its own (udev)
            spec["group_add"] = [str(device_gid)]
    return spec


def runner_command(
    command: list[str],
    *,
    image: str,
    network: str,
    device: str = "",
    state_dir: str = "",
    hub_api_url: str = "",
    python: str = sys.executable,
) -> list[str]:
    """The hub's service command that runs the broker ``command`` (``shared_opu.broker_command``,
    listening on :func:`bind_ip`) in its container, with the host's node ``device``."""
    runner = [python, "-m", "opuhub.broker_container", f"--image={image}",
              f"--network={network}", f"--name={container_name(network)}"]
    if device:
        runner.append(f"--device={device}")
    if state_dir:
        runner.append(f"--state-dir={state_dir}")
    if hub_api_url:
        runner.append(f"--hub-api-url={hub_api_url}")
    return [*runner, "--", *broker_args(command)]


# --- the runner (I/O) ------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m opuhub.broker_container",
        description="Run the shared OPU's broker (python -m opu_kernel.broker) in a container "
                    "of its own until it exits or this process is stopped; arguments after "
                    "'--' go to the broker. The secret comes from OPU_BROKER_SECRET.")
    parser.add_argument("--image", required=True, help="Image with opu_kernel (single-user).")
    parser.add_argument("--network", required=True,
                        help="The users' Docker network (the container joins it alone); "
                             "'host' for host networking.")
    parser.add_argument("--name", default="", help="Container name (default: from --network).")
    parser.add_argument("--device", default="",
                        help="Host device node served (passed through at the same path); "
                             "none for the simulated OPU.")
    parser.add_argument("--device-gid", type=int, default=None,
                        help="Group added so the broker may open the node (default: the "
                             "node's group when it is visible here and not root's).")
    parser.add_argument("--state-dir", default="", help="The hub's state directory (the label's "
                                                        "value: which hub runs this broker).")
    parser.add_argument("--hub-api-url", default="",
                        help="JUPYTERHUB_API_URL as the container reaches the hub.")
    parser.add_argument("--label", action="append", default=[], metavar="KEY=VALUE",
                        help="An extra label on the container (repeatable).")
    parser.add_argument("--mem-limit", default=DEFAULT_MEM_LIMIT, help="Memory limit.")
    parser.add_argument("--pids-limit", type=int, default=DEFAULT_PIDS_LIMIT,
                        help="Processes and threads.")
    parser.add_argument("--stop-timeout", type=int, default=DEFAULT_STOP_TIMEOUT,
                        help="Seconds the broker gets to stop before it is killed.")
    parser.add_argument("--failure-pause", type=float, default=DEFAULT_FAILURE_PAUSE,
                        help=f"Seconds to wait before exiting when the broker failed within "
                             f"{MIN_UPTIME_S:g} s (JupyterHub restarts the service at once).")
    if "--" not in argv:
        parser.error("the broker's arguments go after '--'")
    split = argv.index("--")
    options = parser.parse_args(argv[:split])
    options.broker_args = argv[split + 1:]
    options.name = options.name or container_name(options.network)
    for label in options.label:
        if "=" not in label:
            parser.error(f"--label wants KEY=VALUE, got {label!r}")
    return options


def node_gid(device: str) -> int | None:
    """The group of ``device`` if this process can see it (a hub in a container may not)."""
    try:
        gid = os.stat(device).st_gid
    except OSError:
        return None
    return gid or None


class _Stop(BaseException):
    """SIGTERM or SIGINT: raised out of whatever Docker call the runner is blocked in
    (BaseException, so that no library's ``except Exception`` swallows it)."""


def _raise_stop(signum, frame):
    raise _Stop(signum)


def log(message: str) -> None:
    print(f"[opuhub.broker_container] {message}", file=sys.stderr, flush=True)


def remove_broker(client, name: str, why: str) -> None:
    """Remove the broker's container called ``name`` (``why``: for the log), if there is one:
    the one this runner started, or one that a killed runner left; refuse to touch a
    container of that name that is not a broker's."""
    import docker.errors

    try:
        container = client.containers.get(name)
    except docker.errors.NotFound:
        return
    if LABEL not in (container.labels or {}):
        raise BrokerContainerError(
            f"a container named {name} exists and is not an OPU broker (no {LABEL} label); "
            f"remove or rename it, or pick another name with --name")
    log(f"removing {why} broker container {name}")
    try:
        container.remove(force=True)
    except docker.errors.NotFound:
        pass


def copy_logs(container, out) -> None:
    try:
        for chunk in container.logs(stream=True, follow=True):
            out.write(chunk)
            out.flush()
    except Exception as e:  # the container went away: the main thread reports how it ended
        log(f"log stream ended: {type(e).__name__}: {e}")


def run(options: argparse.Namespace, environ: dict[str, str]) -> int:
    import docker

    device_gid = options.device_gid
    if options.device and device_gid is None:
        device_gid = node_gid(options.device)
    spec = container_spec(
        options.image, options.broker_args, options.network, name=options.name,
        device=options.device, device_gid=device_gid,
        environment=forwarded_env(environ, options.hub_api_url),
        labels=dict(label.split("=", 1) for label in options.label),
        state_dir=options.state_dir, mem_limit=options.mem_limit,
        pids_limit=options.pids_limit)
    client = docker.from_env(timeout=60)
    container = None
    code = 0
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _raise_stop)
    try:
        remove_broker(client, options.name, "a leftover")
        container = client.containers.create(**spec)
        container.start()
        started = time.monotonic()
        log(f"broker container {options.name} started ({options.image}, network "
            f"{options.network}, device {options.device or 'none: simulated'})")
        copier = threading.Thread(target=copy_logs, args=(container, sys.stdout.buffer),
                                  daemon=True, name="broker logs")
        copier.start()
        code = int(container.wait().get("StatusCode", 1))
        copier.join(5)  # the rest of its log
        log(f"broker container {options.name} exited with {code}")
        if code and time.monotonic() - started < MIN_UPTIME_S:
            time.sleep(options.failure_pause)  # a signal still ends it (see _Stop)
    except _Stop as stop:
        log(f"stopping the broker container {options.name} (signal {stop.args[0]})")
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, signal.SIG_IGN)  # a second signal must not cut the clean-up
        try:
            if container is not None:
                try:
                    container.stop(timeout=options.stop_timeout)
                except docker.errors.NotFound:
                    pass
            # also when a signal came between create() and the assignment above
            remove_broker(client, options.name, "the")
        finally:
            client.close()
    return code


def main(argv: list[str] | None = None) -> int:
    import docker.errors

    options = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return run(options, dict(os.environ))
    except BrokerContainerError as e:
        log(f"error: {e}")
        code = 2
    except docker.errors.DockerException as e:  # no engine, no image, no network: say which
        log(f"Docker could not run the broker: {e}")
        code = 1
    for signum in (signal.SIGTERM, signal.SIGINT):  # stopping it now just ends it
        signal.signal(signum, signal.SIG_DFL)
    time.sleep(options.failure_pause)
    return code


if __name__ == "__main__":
    sys.exit(main())
