"""Secrets of a local hub, generated once into the state directory with mode 0600.

No password or token lives in code or in git: the first start generates them, later starts
reuse them (so cookies, the proxy and the CLI token survive a hub restart).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

# file names under the state directory
COOKIE_SECRET = "jupyterhub_cookie_secret"
PROXY_TOKEN = "proxy-auth-token"
WORKSHOP_PASSWORD = "workshop-password"
ADMIN_PASSWORD = "admin-password"
CLI_TOKEN = "cli-token"


def ensure_state_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def read_or_create(path: Path, make) -> str:
    """Return the secret stored at ``path``, creating it (0600, atomically) if absent."""
    try:
        value = path.read_text().strip()
        if value:
            return value
    except FileNotFoundError:
        pass
    value = make()
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")
    os.replace(tmp, path)
    return value


def token() -> str:
    return secrets.token_hex(32)


def password(words: int = 4) -> str:
    """A readable password for a workshop whiteboard: 4 groups of 4 letters/digits."""
    alphabet = "abcdefghjkmnpqrstuvwxyz23456789"  # no look-alikes (l/1, o/0)
    return "-".join("".join(secrets.choice(alphabet) for _ in range(4)) for _ in range(words))


# what ensure_secrets makes, and how
MAKERS = {
    PROXY_TOKEN: token,
    WORKSHOP_PASSWORD: password,
    # SharedPasswordAuthenticator wants >= 32 characters for the admin password
    ADMIN_PASSWORD: lambda: password(8),
    CLI_TOKEN: token,
}
NAMES = tuple(MAKERS)


def ensure_secrets(state_dir: Path) -> dict[str, str]:
    ensure_state_dir(state_dir)
    return {name: read_or_create(state_dir / name, make) for name, make in MAKERS.items()}
