"""Start OPU Hub on this machine: ``python -m opuhub.run`` (what ``make run`` does).

1. checks the ports and takes over what a hub that died left behind,
2. prepares the host (opuhub.host.prepare_host): secrets generated once into ./state (0700
   directory, 0600 files, never in git), configurable-http-proxy installed with npm if it is
   missing (into hub/node_modules), the spawner chosen, the Docker network created,
3. starts JupyterHub on http://127.0.0.1:8000 with SQLite, the OPU lease service and the
   idle culler, choosing Docker containers or local processes (it logs which and why),
4. prints how to log in.

After a hub that did not stop cleanly (SIGKILL, crash), it takes over what that hub left on
the same state directory (opuhub.restart): JupyterHub replaces the old proxy, leftover services
are stopped, users' servers and leases carry on. A port held by anything else is reported.

Every OPUHUB_* variable (see opuhub/settings.py) can be set in the environment first.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from urllib.parse import urlparse

from . import restart, secrets
from .host import prepare_host
from .lifeline import obey_stop_signals
from .proxy import ProxyInstallError
from .settings import Settings, SettingsError, settings_from_env

CONFIG = Path(__file__).resolve().parent.parent / "jupyterhub_config.py"


def port_in_use(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, port)) == 0


def ports_to_check(settings: Settings) -> list[tuple[str, int, str]]:
    """(host, port, the variable that moves it) of what the hub, its proxy, the lease
    service and the shared OPU's broker (without Docker) will listen on. The hub's own port
    only when set: with Docker it is on the user network's gateway, known later."""
    url = urlparse(settings.bind_url)
    checks = [
        (url.hostname or "127.0.0.1", url.port, "OPUHUB_BIND_URL"),
        ("127.0.0.1", settings.proxy_api_port, "OPUHUB_PROXY_API_PORT"),
        ("127.0.0.1", settings.lease_service_port, "OPUHUB_LEASE_SERVICE_PORT"),
    ]
    if settings.hub_bind_url:
        hub = urlparse(settings.hub_bind_url)
        checks.append((hub.hostname or "127.0.0.1", hub.port, "OPUHUB_HUB_BIND_URL"))
    if settings.shared_opu and settings.spawner != "docker":
        # the broker beside the hub: a squatter there would receive every shared kernel's
        # inputs (it cannot sign replies, but would see what they send)
        host = urlparse(settings.hub_bind_url).hostname if settings.hub_bind_url else None
        checks.append((host or "127.0.0.1", settings.shared_opu_port, "OPUHUB_SHARED_OPU_PORT"))
    return checks


def describe(pids: set[int]) -> str:
    parts = []
    for pid in sorted(pids):
        process = restart.read_process(pid)
        name = os.path.basename(process.cmdline[0]) if process and process.cmdline else "?"
        parts.append(f"pid {pid} ({name})")
    return ", ".join(parts)


def recover(settings: Settings) -> str | None:
    """Take over what a hub that died left on this state directory. Returns why the start
    must not go on, or None."""
    state = settings.state_dir
    hub = restart.live_hub(state)
    if hub is not None:
        return (f"a hub is already running on {state} (pid {hub}). Stop it first "
                f"(kill -INT {hub}), or give this one another OPUHUB_STATE_DIR.")
    left = restart.find_leftovers(state)
    stale = left.extra_proxies + [p.pid for p in left.services]
    if stale:
        print(f"opuhub: stopping what the previous hub left running: {describe(set(stale))}",
              file=sys.stderr)
        stuck = restart.stop_processes(stale)
        if stuck:
            return f"cannot stop {describe(set(stuck))} left by the previous hub; stop it."
    if left.proxy is not None:
        print(f"opuhub: the previous hub's proxy (pid {left.proxy}) serves until JupyterHub "
              "replaces it", file=sys.stderr)
    for host, port, variable in ports_to_check(settings):
        if not port_in_use(host, port):
            continue
        holders = restart.listeners(port)
        if left.proxy is not None and holders == {left.proxy}:
            continue  # ours: JupyterHub stops it (state/proxy.pid) before starting its own
        what = "address" if variable.endswith("_URL") else "port"
        by = f" by {describe(holders)}" if holders else ""
        return (f"{host}:{port} is already in use{by} (another hub?). Stop it, "
                f"or set {variable} to another {what}.")
    return None


def login_url(settings) -> str:
    """Where people log in: with subdomains the hub's pages live at that host (a login at the
    bind address would leave the cookie on the wrong host)."""
    return settings.subdomain_host or settings.bind_url


def login_help(url: str, state: Path, admins: list[str], workshop_password: str,
               authenticator: str = "workshop") -> str:
    """What `make run` prints: how admins and attendees log in with this authenticator."""
    names = ", ".join(f"'{name}'" for name in admins or ["admin"])
    admin = f"user{'s' if len(admins) > 1 else ''} {names}"
    accounts = ".venv/bin/python -m opuhub.accounts"
    if url.rstrip("/") != "http://127.0.0.1:8000":
        accounts += f" --hub-url {url}"
    if authenticator == "native":
        admin += " (approved already; admin names cannot be signed up)"
        users = f"""\
  Accounts:   people sign up at {url}/hub/signup (passwords of 10+ characters),
              then an admin approves them at {url}/hub/authorize"""
    elif authenticator == "shared":
        users = f"""\
  Workshop:   accounts log in with the shared password: {workshop_password}
              (whoever has it can log in as any workshop account: for a closed room only)
              create them with:  {accounts} create --count 20"""
    else:
        users = f"""\
  Workshop:   every account has its own password. Create the accounts, print their passwords
              and write a sheet to hand out with:
                {accounts} create --count 20 --csv accounts.csv
              a new password for an account that lost its own:  {accounts} reset workshop-03"""
    return f"""
OPU Hub is starting at {url}

  Admin:      {admin}, password in {state / secrets.ADMIN_PASSWORD} (cat it; 0600)
{users}
  Secrets, database, user homes: {state}/ (keep it; delete it to start afresh)
  Stop with Ctrl-C; running notebooks survive a hub restart.
"""


def main() -> int:
    os.environ.setdefault("OPUHUB_ADMINS", "admin")
    try:
        settings = settings_from_env(os.environ)
    except SettingsError as e:
        print(f"opuhub: {e}", file=sys.stderr)
        return 2
    refusal = recover(settings)
    if refusal:
        print(f"opuhub: {refusal}", file=sys.stderr)
        return 1
    try:
        host = prepare_host(settings)  # the hub's config file repeats it: idempotent, cheap
    except (ProxyInstallError, SettingsError) as e:
        print(f"opuhub: {e}", file=sys.stderr)
        return 1
    chp = host.chp
    workshop_password = settings.user_password or host.secrets[secrets.WORKSHOP_PASSWORD]
    print(login_help(login_url(settings), settings.state_dir, settings.admins, workshop_password,
                     settings.authenticator), file=sys.stderr, flush=True)
    os.environ["OPUHUB_STATE_DIR"] = str(settings.state_dir)
    os.environ["PATH"] = os.pathsep.join([str(Path(chp).parent), os.environ.get("PATH", "")])
    jupyterhub = str(Path(sys.executable).with_name("jupyterhub"))
    # SIGINT ignored here (a background job of a script) would be inherited by every process
    # JupyterHub starts before it installs its own handler, and JupyterHub stops services
    # and local servers with SIGINT first: each then cost a 30 s timeout at every stop
    obey_stop_signals()
    os.execv(jupyterhub, [jupyterhub, "-f", str(CONFIG)])
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
