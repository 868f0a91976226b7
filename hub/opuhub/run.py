"""Start OPU Hub on this machine: ``python -m opuhub.run`` (what ``make run`` does).

1. installs configurable-http-proxy with npm if it is missing (into hub/node_modules),
2. generates the secrets once into ./state (0700 directory, 0600 files, never in git),
3. starts JupyterHub on http://127.0.0.1:8000 with SQLite, the OPU lease service and the
   idle culler, choosing Docker containers or local processes (it logs which and why),
4. prints how to log in.

Every OPUHUB_* variable (see opuhub/settings.py) can be set in the environment first.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from urllib.parse import urlparse

from . import secrets
from .proxy import ProxyInstallError, ensure_chp
from .settings import SettingsError, settings_from_env

CONFIG = Path(__file__).resolve().parent.parent / "jupyterhub_config.py"


def port_in_use(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, port)) == 0


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
    url = urlparse(settings.bind_url)
    if port_in_use(url.hostname or "127.0.0.1", url.port):
        print(f"opuhub: {settings.bind_url} is already in use (another hub?). Stop it, or set "
              "OPUHUB_BIND_URL to another address.", file=sys.stderr)
        return 1
    try:
        chp = ensure_chp()
    except ProxyInstallError as e:
        print(f"opuhub: {e}", file=sys.stderr)
        return 1
    state_secrets = secrets.ensure_secrets(settings.state_dir)
    workshop_password = settings.user_password or state_secrets[secrets.WORKSHOP_PASSWORD]
    print(login_help(settings.bind_url, settings.state_dir, settings.admins, workshop_password,
                     settings.authenticator), file=sys.stderr, flush=True)
    os.environ["OPUHUB_STATE_DIR"] = str(settings.state_dir)
    os.environ["PATH"] = os.pathsep.join([str(Path(chp).parent), os.environ.get("PATH", "")])
    jupyterhub = str(Path(sys.executable).with_name("jupyterhub"))
    os.execv(jupyterhub, [jupyterhub, "-f", str(CONFIG)])
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
