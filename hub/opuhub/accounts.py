"""Create (or delete) workshop accounts in bulk through the hub's REST API.

    python -m opuhub.accounts create --count 30 --prefix workshop-
    python -m opuhub.accounts delete --count 30 --prefix workshop-

The token comes from --token, $JUPYTERHUB_API_TOKEN or the local hub's state/cli-token.
With the shared-password authenticator, the new accounts log in with the workshop password
(state/workshop-password); nobody else can, unless OPUHUB_ALLOW_ALL is set.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

import requests

# JupyterHub normalizes names to lower case; keep workshop names simple and URL-safe
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")


def workshop_usernames(prefix: str, count: int, start: int = 1) -> list[str]:
    """['workshop-01', ..., 'workshop-30']: zero-padded so they sort in order."""
    if count < 1 or count > 10000:
        raise ValueError(f"count must be between 1 and 10000, got {count}")
    if start < 0:
        raise ValueError(f"start must be >= 0, got {start}")
    width = max(2, len(str(start + count - 1)))
    names = [f"{prefix}{i:0{width}d}" for i in range(start, start + count)]
    bad = [name for name in names if not NAME_RE.match(name)]
    if bad:
        raise ValueError(
            f"invalid user name {bad[0]!r}: use lower-case letters, digits, '.', '_' or '-'"
        )
    return names


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


def create(hub_url: str, token: str, names: list[str]) -> tuple[list[str], list[str]]:
    """Create the accounts; returns (created, already existing)."""
    resp = requests.post(
        f"{hub_url.rstrip('/')}/hub/api/users",
        json={"usernames": names},
        headers={"Authorization": f"token {token}"},
        timeout=60,
    )
    if resp.status_code == 409:  # every name exists already
        return [], names
    if resp.status_code != 201:
        raise RuntimeError(f"the hub refused to create users (HTTP {resp.status_code}): {resp.text[:300]}")
    created = [user["name"] for user in resp.json()]
    return created, [name for name in names if name not in created]


def delete(hub_url: str, token: str, names: list[str]) -> list[str]:
    deleted = []
    for name in names:
        resp = requests.delete(
            f"{hub_url.rstrip('/')}/hub/api/users/{name}",
            headers={"Authorization": f"token {token}"},
            timeout=60,
        )
        if resp.status_code == 204:
            deleted.append(name)
        elif resp.status_code != 404:
            raise RuntimeError(f"could not delete {name} (HTTP {resp.status_code}): {resp.text[:300]}")
    return deleted


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m opuhub.accounts", description=__doc__.split("\n")[0])
    parser.add_argument("action", choices=["create", "delete"])
    parser.add_argument("--count", type=int, required=True, help="number of accounts")
    parser.add_argument("--prefix", default="workshop-", help="user name prefix (default workshop-)")
    parser.add_argument("--start", type=int, default=1, help="first number (default 1)")
    parser.add_argument("--hub-url", default=os.environ.get("OPUHUB_BIND_URL", "http://127.0.0.1:8000"))
    parser.add_argument("--token", help="an API token with the admin:users scope")
    parser.add_argument("--state-dir", type=Path, default=Path(os.environ.get("OPUHUB_STATE_DIR", "state")))
    args = parser.parse_args(argv)
    try:
        names = workshop_usernames(args.prefix, args.count, args.start)
    except ValueError as e:
        parser.error(str(e))
    token = find_token(args.token, args.state_dir)
    try:
        if args.action == "create":
            created, existing = create(args.hub_url, token, names)
            for name in created:
                print(name)
            print(f"created {len(created)} account(s), {len(existing)} already existed", file=sys.stderr)
            password = args.state_dir / "workshop-password"
            if password.exists():
                print(f"they log in at {args.hub_url} with the workshop password in {password}",
                      file=sys.stderr)
        else:
            deleted = delete(args.hub_url, token, names)
            print(f"deleted {len(deleted)} account(s)", file=sys.stderr)
    except (requests.RequestException, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
