"""The authenticators of workshop accounts, and the user-name rules every OPU Hub authenticator applies.

- :class:`WorkshopAuthenticator` (``OPUHUB_AUTHENTICATOR=workshop``, the default): each account
  has its own password, issued by ``python -m opuhub.accounts create`` and stored hashed
  (:mod:`opuhub.password_store`); admins log in with ``state/admin-password``.
- :class:`OPUSharedPasswordAuthenticator` (``OPUHUB_AUTHENTICATOR=shared``): one password for
  every workshop account. Anyone who has it can log in as any of them: an explicit opt-in for a
  closed room.

Both, and :class:`opuhub.native_auth.OPUNativeAuthenticator`, accept only the names of
:mod:`opuhub.usernames`, at login, at sign-up and when an admin creates a user through the REST
API: a look-alike name (control characters, non-ASCII, too long) would otherwise share a
container or a home with the real one.
"""

from __future__ import annotations

import asyncio
import inspect
from concurrent.futures import ThreadPoolExecutor
from hmac import compare_digest

from jupyterhub.auth import Authenticator
from jupyterhub.authenticators.shared import SharedPasswordAuthenticator
from traitlets import Integer, Unicode, default, validate

from . import retired_homes, usernames
from .password_store import MAX_PASSWORD_LENGTH, PasswordStore


class UsernameRules(Authenticator):
    """Base (or mixin, listed first) for an Authenticator: only names of
    :mod:`opuhub.usernames`, everywhere.

    ``username_pattern`` alone is not enough: JupyterHub matches it with ``re.match``, where
    ``$`` also matches before a trailing newline, and ``POST /hub/api/users/NAME`` never calls
    ``validate_username``; it does call ``add_user``, whose exception makes it answer 400 and
    forget the user."""

    @default("username_pattern")
    def _default_username_pattern(self):
        return usernames.PATTERN

    def normalize_username(self, username):
        return usernames.normalize(super().normalize_username(username))

    def validate_username(self, username):
        return usernames.is_valid(username) and super().validate_username(username)

    def add_user(self, user):
        usernames.validate(user.name)  # InvalidUsername: the API answers 400
        return super().add_user(user)

    def login_fields(self, data) -> tuple[str, str] | None:
        """(normalised name, password) of a login form, or None when either is unusable."""
        name = self.normalize_username(data.get("username") or "")
        password = data.get("password")
        if not self.validate_username(name) or not isinstance(password, str):
            return None
        return name, password

    async def delete_user(self, user):
        # before the name is free again: its home and Unix account must not wait there for
        # whoever is given the name next (opuhub.retired_homes); a failure keeps the user
        await retired_homes.retire(user, self.log)
        result = super().delete_user(user)
        if inspect.isawaitable(result):
            await result


def check_admin_password(expected: str | None, given) -> bool:
    return bool(expected) and isinstance(given, str) and compare_digest(given.encode(), expected.encode())


class OPUSharedPasswordAuthenticator(UsernameRules, SharedPasswordAuthenticator):
    """JupyterHub's shared-password login, restricted to valid user names."""


class WorkshopAuthenticator(UsernameRules):
    """A password per workshop account, checked against salted scrypt hashes."""

    password_db = Unicode(
        "",
        config=True,
        help="""SQLite file (mode 0600) with the hashes of the per-account passwords.

        ``python -m opuhub.accounts create`` writes it; it is read at every login.""",
    )

    admin_password = Unicode(
        "",
        config=True,
        help="""The password of the admin users (``admin_users``); OPU Hub sets it from
        ``state/admin-password``. Admins never log in with a per-account password.""",
    )

    hash_workers = Integer(
        2,
        config=True,
        help="""Threads that check passwords. Hashing runs outside the hub's event loop, so a
        burst of logins (or of guesses) queues here instead of stalling every other request.""",
    )

    @validate("admin_password")
    def _check_admin_password(self, proposal):
        if proposal.value and len(proposal.value) < 16:
            raise ValueError("WorkshopAuthenticator.admin_password must be at least 16 characters")
        return proposal.value

    @default("allow_existing_users")
    def _default_allow_existing_users(self):
        # accounts are created through the REST API; deleting one there ends its access
        return True

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        if not self.password_db:
            raise ValueError("WorkshopAuthenticator.password_db must name the password file")
        self.store = PasswordStore(self.password_db).create()
        self._executor = ThreadPoolExecutor(self.hash_workers, thread_name_prefix="opuhub-auth")

    def check_allow_config(self):
        if not self.admin_password:
            self.log.warning("WorkshopAuthenticator.admin_password is not set: admins cannot log in")

    async def authenticate(self, handler, data):
        fields = self.login_fields(data)
        if fields is None:
            return None
        name, password = fields
        if name in self.admin_users:
            if check_admin_password(self.admin_password, password):
                return {"name": name, "admin": True}
            return None
        if len(password) > MAX_PASSWORD_LENGTH:
            return None
        loop = asyncio.get_running_loop()
        if await loop.run_in_executor(self._executor, self.store.verify, name, password):
            return {"name": name, "admin": False}
        return None

    async def delete_user(self, user):
        await super().delete_user(user)  # the home first: if it stays, so does the account
        # a name created again later must not inherit the old password
        self.store.delete([user.name])
