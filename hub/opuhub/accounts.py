"""Workshop accounts in bulk, each with a password of its own.

    python -m opuhub.accounts create --count 30 [--prefix workshop-] [--csv accounts.csv]
    python -m opuhub.accounts reset workshop-03        # a new password; the old one stops working
    python -m opuhub.accounts delete --count 30
    python -m opuhub.accounts create --count 30 --prestart   # servers started ahead: a warm pool

Accounts are created through the hub's REST API. With the hub's default authenticator
(OPUHUB_AUTHENTICATOR=workshop) every account gets a random password of its own, printed as
"name password" lines and, with --csv, written to a sheet (mode 0600) with each login link. Only
the hashes are kept (state/workshop-accounts.sqlite): hand the passwords out now. Running create
again keeps the passwords of existing accounts; reset issues new ones. With
OPUHUB_AUTHENTICATOR=shared the accounts log in with the shared password
(state/workshop-password); with native, people sign up instead.

--prestart starts every listed account's server now (in the hub's line of starts, a few at
a time), so that at the workshop login is instant and a kernel is already warm. Each
idle server holds about 130 MiB; the idle culler stops them after OPUHUB_CULL_IDLE_SECONDS
(1 h by default): start them shortly before the room arrives.

Run it next to the hub: the token comes from --token, $JUPYTERHUB_API_TOKEN or the hub's
state/cli-token, and the password hashes go into the hub's state directory (--state-dir).
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from pathlib import Path
from urllib.parse import quote

import requests

from . import password_store, secrets, usernames

WORKSHOP = "workshop"
SHARED = "shared"
NATIVE = "native"


def workshop_usernames(prefix: str, count: int, start: int = 1) -> list[str]:
    """['workshop-01', ..., 'workshop-30']: zero-padded so they sort in order."""
    if count < 1 or count > 10000:
        raise ValueError(f"count must be between 1 and 10000, got {count}")
    if start < 0:
        raise ValueError(f"start must be >= 0, got {start}")
    width = max(2, len(str(start + count - 1)))
    names = [f"{prefix}{i:0{width}d}" for i in range(start, start + count)]
    for name in names:
        usernames.validate(name)
    return names


def authenticator_kind(class_name: str) -> str:
    """'workshop', 'shared' or 'native' for the hub's authenticator class, else the class."""
    for suffix, kind in (("WorkshopAuthenticator", WORKSHOP),
                         ("SharedPasswordAuthenticator", SHARED),
                         ("NativeAuthenticator", NATIVE)):
        if class_name.endswith(suffix):
            return kind
    return class_name


def login_url(public_url: str, name: str) -> str:
    """The hub's login page with the name filled in."""
    return f"{public_url.rstrip('/')}/hub/login?username={quote(name)}"


def write_sheet(path: Path, passwords: dict[str, str], public_url: str) -> None:
    """A CSV (name, password, login_url), one row per account, readable by its owner only."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an existing file keeps its mode through O_CREAT
    with os.fdopen(fd, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["name", "password", "login_url"])
        for name, password in passwords.items():
            writer.writerow([name, password, login_url(public_url, name)])


def find_token(explicit: str | None, state_dir: Path) -> str:
    if explicit:
        return explicit
    if os.environ.get("JUPYTERHUB_API_TOKEN"):
        return os.environ["JUPYTERHUB_API_TOKEN"]
    path = state_dir / "cli-token"
    if path.exists():
        return path.read_text().strip()
    raise SystemExit(
        f"no API token: pass --token, set JUPYTERHUB_API_TOKEN, or run next to a hub whose "
        f"state directory ({state_dir}) holds cli-token"
    )


class HubAPI:
    def __init__(self, hub_url: str, token: str):
        self.url = f"{hub_url.rstrip('/')}/hub/api"
        self.headers = {"Authorization": f"token {token}"}

    def request(self, method: str, path: str, **kw) -> requests.Response:
        return requests.request(method, self.url + path, headers=self.headers, timeout=60, **kw)

    def authenticator(self) -> str:
        resp = self.request("GET", "/info")
        if resp.status_code != 200:
            raise RuntimeError(f"cannot ask the hub which authenticator it runs (HTTP "
                               f"{resp.status_code}): the token needs the read:hub scope")
        return authenticator_kind(resp.json()["authenticator"]["class"])

    def create(self, names: list[str]) -> tuple[list[str], list[str]]:
        """Create the accounts; returns (created, already existing)."""
        resp = self.request("POST", "/users", json={"usernames": names})
        if resp.status_code == 409:  # every name exists already
            return [], names
        if resp.status_code != 201:
            raise RuntimeError(f"the hub refused to create users (HTTP {resp.status_code}): "
                               f"{resp.text[:300]}")
        created = [user["name"] for user in resp.json()]
        return created, [name for name in names if name not in created]

    def user(self, name: str) -> dict | None:
        resp = self.request("GET", f"/users/{quote(name)}")
        if resp.status_code == 404:
            return None
        if resp.status_code != 200:
            raise RuntimeError(f"could not look up {name} (HTTP {resp.status_code}): {resp.text[:300]}")
        return resp.json()

    def start_server(self, name: str) -> str:
        """Ask for the account's server: 'started', 'starting' (in line, or still starting)
        or 'running' (it was already)."""
        resp = self.request("POST", f"/users/{quote(name)}/server", json={})
        if resp.status_code == 201:
            return "started"
        if resp.status_code == 202:
            return "starting"
        if resp.status_code == 400 and "already running" in resp.text:
            return "running"
        raise RuntimeError(f"could not start {name}'s server (HTTP {resp.status_code}): "
                           f"{resp.text[:300]}")

    def delete(self, names: list[str]) -> list[str]:
        deleted = []
        for name in names:
            resp = self.request("DELETE", f"/users/{quote(name)}")
            if resp.status_code == 204:
                deleted.append(name)
            elif resp.status_code != 404:
                raise RuntimeError(f"could not delete {name} (HTTP {resp.status_code}): {resp.text[:300]}")
        return deleted


def open_store(state_dir: Path) -> password_store.PasswordStore:
    path = state_dir / password_store.FILE_NAME
    if not path.exists():  # the hub creates it when it starts with the workshop authenticator
        raise RuntimeError(f"no password file at {path}: run this next to the hub, with "
                           f"--state-dir set to the hub's state directory")
    return password_store.PasswordStore(path)


def issue(api: HubAPI, store: password_store.PasswordStore, names: list[str],
          replace: bool) -> tuple[dict[str, str], list[str]]:
    """New passwords for the accounts among ``names`` (admins excluded: they use
    state/admin-password); returns ({name: password}, admins skipped)."""
    admins = [name for name in names if (api.user(name) or {}).get("admin")]
    passwords = store.issue([n for n in names if n not in admins], secrets.password, replace=replace)
    return passwords, admins


def report_passwords(passwords: dict[str, str], admins: list[str], args) -> None:
    for name, password in passwords.items():
        print(f"{name} {password}")
    print(f"{len(passwords)} new password(s); only their hashes are kept: hand them out now",
          file=sys.stderr)
    if admins:
        print(f"no password for admin(s) {', '.join(admins)}: they log in with "
              f"{args.state_dir / secrets.ADMIN_PASSWORD}", file=sys.stderr)
    if args.csv:
        write_sheet(args.csv, passwords, args.public_url or args.hub_url)
        print(f"wrote {len(passwords)} row(s) to {args.csv} (mode 0600)", file=sys.stderr)


def prestart(api: HubAPI, names: list[str], workers: int = 8) -> dict[str, int]:
    """Start the servers of ``names`` (a warm pool); returns how many per outcome. The hub
    admits the starts in turn: asking in parallel only queues them sooner."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=workers) as pool:
        outcomes = list(pool.map(api.start_server, names))
    return {outcome: outcomes.count(outcome) for outcome in sorted(set(outcomes))}


def run(args) -> None:
    api = HubAPI(args.hub_url, find_token(args.token, args.state_dir))
    if args.prestart and args.action != "create":
        raise RuntimeError("--prestart goes with create")
    names = args.names
    if args.action == "delete":
        deleted = api.delete(names)
        kind = api.authenticator()
        if kind == WORKSHOP:
            open_store(args.state_dir).delete(names)
        print(f"deleted {len(deleted)} account(s)", file=sys.stderr)
        return
    kind = api.authenticator()
    if args.action == "reset":
        if kind != WORKSHOP:
            raise RuntimeError(f"the hub runs the {kind!r} authenticator: accounts have no "
                               "password of their own to reset")
        missing = [name for name in names if api.user(name) is None]
        if missing:
            raise RuntimeError(f"no such account: {', '.join(missing)} (create it first)")
        passwords, admins = issue(api, open_store(args.state_dir), names, replace=True)
        report_passwords(passwords, admins, args)
        return

    store = open_store(args.state_dir) if kind == WORKSHOP else None
    created, existing = api.create(names)
    print(f"created {len(created)} account(s), {len(existing)} already existed", file=sys.stderr)
    if args.prestart:
        counts = prestart(api, names)
        print("servers: " + ", ".join(f"{n} {outcome}" for outcome, n in counts.items())
              + " (a warm pool: idle ones are culled after OPUHUB_CULL_IDLE_SECONDS)",
              file=sys.stderr)
    if kind == WORKSHOP:
        passwords, admins = issue(api, store, names, replace=False)
        report_passwords(passwords, admins, args)
        kept = [n for n in names if n not in passwords and n not in admins]
        if kept:
            print(f"{len(kept)} account(s) kept their password; 'python -m opuhub.accounts "
                  f"reset NAME' issues a new one", file=sys.stderr)
        print(f"they log in at {args.public_url or args.hub_url}", file=sys.stderr)
        return
    for name in created:
        print(name)
    if kind == SHARED:
        print(f"they log in at {args.hub_url} with the shared workshop password "
              f"({args.state_dir / secrets.WORKSHOP_PASSWORD}, or OPUHUB_USER_PASSWORD)",
              file=sys.stderr)
    elif kind == NATIVE:
        print("the hub runs the native authenticator: people sign up at /hub/signup "
              "(these names are taken now)", file=sys.stderr)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m opuhub.accounts",
                                     description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n", 2)[2])
    parser.add_argument("action", choices=["create", "reset", "delete"])
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help="account names (instead of --count/--prefix)")
    parser.add_argument("--count", type=int, help="number of accounts")
    parser.add_argument("--prefix", default="workshop-", help="user name prefix (default workshop-)")
    parser.add_argument("--start", type=int, default=1, help="first number (default 1)")
    parser.add_argument("--csv", type=Path, help="write name, password, login link to this CSV (0600)")
    parser.add_argument("--hub-url", default=os.environ.get("OPUHUB_BIND_URL", "http://127.0.0.1:8000"))
    parser.add_argument("--public-url", help="the hub's address for attendees, in the login links "
                                             "(default: --hub-url)")
    parser.add_argument("--token", help="an API token with the admin:users and read:hub scopes")
    parser.add_argument("--prestart", action="store_true",
                        help="with create: start the accounts' servers now (a warm pool; the "
                             "token needs admin:servers, as the hub's cli-token has)")
    parser.add_argument("--state-dir", type=Path, default=Path(os.environ.get("OPUHUB_STATE_DIR", "state")))
    args = parser.parse_args(argv)
    try:
        if args.names and args.count is not None:
            raise ValueError("give account names or --count, not both")
        if args.names:
            args.names = [usernames.validate(usernames.normalize(n)) for n in args.names]
        elif args.count is None:
            raise ValueError("give account names or --count")
        else:
            args.names = workshop_usernames(args.prefix, args.count, args.start)
    except ValueError as e:
        parser.error(str(e))
    try:
        run(args)
    except (requests.RequestException, RuntimeError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
