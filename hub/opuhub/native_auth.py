"""NativeAuthenticator (sign-up + admin approval), made safe for a hub strangers can reach.

On top of jupyterhub-nativeauthenticator 1.3.0 this subclass

- fixes its login on JupyterHub >= 5: the release still times logins with the hub's ``statsd``
  client, which JupyterHub 5 removed (every password login ended in HTTP 500), and its
  error-page rendering misses the ``sync`` argument JupyterHub passes;
- creates the admin accounts (``admin_users``) before the hub serves anyone, approved, with the
  generated admin password (``state/admin-password``), and refuses to sign up an admin name, a
  name that exists already (signed up, or created by an admin through the API) or a name outside
  :mod:`opuhub.usernames`. Upstream approves at once whoever signs up first under an admin name:
  an anonymous visitor became admin;
- answers a login with an unknown name the way it answers a wrong password, after the same
  bcrypt work, so the login page does not tell which names exist;
- refuses passwords bcrypt cannot take (over 72 bytes) with a message instead of an HTTP 500;
- approves and discards accounts only on a navigation from the hub's own pages (upstream's
  GET links could be triggered from another site or an image in an admin's browser).
"""

from __future__ import annotations

import secrets
from types import SimpleNamespace

import bcrypt
from jupyterhub import orm
from jupyterhub.handlers.base import BaseHandler
from nativeauthenticator import NativeAuthenticator
from nativeauthenticator import handlers as upstream
from nativeauthenticator.orm import UserInfo
from tornado import web
from traitlets import Unicode

from . import usernames
from .workshop_auth import UsernameRules, check_admin_password

BCRYPT_MAX_BYTES = 72  # bcrypt >= 5 raises for longer passwords
# checked against when a name has no account, so that costs what a wrong password costs
_DUMMY_HASH = bcrypt.hashpw(secrets.token_hex(16).encode(), bcrypt.gensalt())


def _checkpw(password: bytes, hashed: bytes) -> bool:
    try:
        return bcrypt.checkpw(password, hashed)
    except ValueError:  # not a bcrypt hash
        return False


class _NoStatsd:
    """Accepts the timer calls the handler makes and records nothing."""

    def timer(self, name):
        return self

    def start(self):
        return self

    def stop(self, send=True):
        pass


class LoginHandler(upstream.LoginHandler):
    statsd = _NoStatsd()

    def render_template(self, name, **ns):
        if name == "error.html":
            # JupyterHub would re-render the login form via _render(sync=True), which this
            # handler's _render cannot do: show the hub's plain error page instead
            return BaseHandler.render_template(self, name, **ns)
        return super().render_template(name, **ns)

    async def post(self):
        # upstream re-checks a failed password with bcrypt, which raises (HTTP 500) past 72 bytes
        if len(self.get_body_argument("password", "", strip=False).encode()) > BCRYPT_MAX_BYTES:
            username = self.get_body_argument("username", "", strip=False)
            self.finish(await self._render(login_error="Invalid username or password.",
                                           username=username))
            return
        await super().post()


class SignUpHandler(upstream.SignUpHandler):
    """Says why a name is refused: outside the alphabet, or not available."""

    def get_result_message(self, user, assume_user_is_human, username_already_taken,
                           confirmation_matches, user_is_admin):
        name = self.authenticator.normalize_username(
            self.get_body_argument("username", "", strip=False))
        if assume_user_is_human and user is None:
            if not self.authenticator.validate_username(name):
                return "alert-danger", f"This user name cannot be used: {usernames.RULE}."
            if self.authenticator.name_is_taken(name):
                return "alert-danger", "This user name is not available. Please choose another one."
            password = self.get_body_argument("signup_password", "", strip=False)
            if len(password.encode()) > BCRYPT_MAX_BYTES:
                return "alert-danger", f"Passwords can be at most {BCRYPT_MAX_BYTES} bytes long."
        # a reserved name never reaches upstream's "admin: signed up and approved" message
        return super().get_result_message(user, assume_user_is_human, username_already_taken,
                                          confirmation_matches, False)


class _FromTheHubsOwnPages:
    """Upstream approves and discards accounts with plain GET links, which another site (or an
    image in a page) could make an admin's browser follow: only a navigation from the hub's
    own pages (or a client that sends no Sec-Fetch headers, e.g. a script) is obeyed."""

    async def prepare(self):
        await super().prepare()
        site = self.request.headers.get("Sec-Fetch-Site")
        dest = self.request.headers.get("Sec-Fetch-Dest")
        if site not in (None, "same-origin", "none") or dest not in (None, "document"):
            raise web.HTTPError(403, "Approve or discard accounts from the hub's /hub/authorize page.")


class ToggleAuthorizationHandler(_FromTheHubsOwnPages, upstream.ToggleAuthorizationHandler):
    pass


class DiscardHandler(_FromTheHubsOwnPages, upstream.DiscardHandler):
    """Discards a sign-up that is not (or no longer) approved.

    Upstream also means to drop a hub user of that name from the registry, which would skip
    stopping their server and archiving their home (so the home would wait under a name anyone
    may sign up for again). A sign-up that became a hub user is deleted on the admin page."""

    @upstream.admin_users_scope
    async def get(self, user_name):
        info = self.authenticator.get_user(user_name)
        if info is not None and not info.is_authorized:
            if self.find_user(user_name) is not None:
                raise web.HTTPError(
                    409, f"{user_name} has logged in before: delete them on the admin page "
                         "(their home is archived there), not here.")
            # only the pending sign-up (NativeAuthenticator's table) goes
            NativeAuthenticator.delete_user(self.authenticator, SimpleNamespace(name=user_name))
        self.redirect(self.hub.base_url + "authorize")


_OWN_HANDLERS = {
    upstream.LoginHandler: LoginHandler,
    upstream.SignUpHandler: SignUpHandler,
    upstream.ToggleAuthorizationHandler: ToggleAuthorizationHandler,
    upstream.DiscardHandler: DiscardHandler,
}


class OPUNativeAuthenticator(UsernameRules, NativeAuthenticator):
    admin_password = Unicode(
        "",
        config=True,
        help="""The password of every admin user (``admin_users``); OPU Hub sets it from
        ``state/admin-password``. The admin accounts are created with it, approved, when the
        hub starts, and reset to it at every start; admin names cannot be signed up.""",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.ensure_admin_accounts()

    def ensure_admin_accounts(self) -> None:
        """Admins have an approved account with the admin password before anyone can sign up."""
        if not self.admin_password:
            if self.admin_users:
                self.log.warning("OPUNativeAuthenticator.admin_password is not set: admins cannot log in")
            return
        # only for the account list: logins of admins compare with admin_password itself
        secret = self.admin_password.encode()[:BCRYPT_MAX_BYTES]
        for name in sorted(self.normalize_username(n) for n in self.admin_users):
            info = UserInfo.find(self.db, name)
            if info is None:
                info = UserInfo(username=name, password=b"", is_authorized=True)
                self.db.add(info)
            elif not _checkpw(secret, info.password):
                self.log.warning("account %s had another password than the admin password: reset", name)
            info.password = bcrypt.hashpw(secret, bcrypt.gensalt())
            info.is_authorized = True
        self.db.commit()

    def name_is_taken(self, name: str) -> bool:
        """An admin name, a signed-up name, or a hub user (e.g. created through the API)."""
        return (
            name in {self.normalize_username(n) for n in self.admin_users}
            or self.user_exists(name)
            or orm.User.find(self.db, name) is not None
        )

    def create_user(self, username, password, **kwargs):
        name = self.normalize_username(username)
        if (not self.validate_username(name) or self.name_is_taken(name)
                or len(password.encode()) > BCRYPT_MAX_BYTES):
            return None
        return super().create_user(name, password, **kwargs)

    async def authenticate(self, handler, data):
        fields = self.login_fields(data)
        if fields is None:
            return None
        name, password = fields
        if name in self.admin_users:
            return name if check_admin_password(self.admin_password, password) else None
        if self.get_user(name) is None or len(password.encode()) > BCRYPT_MAX_BYTES:
            bcrypt.checkpw(password.encode()[:BCRYPT_MAX_BYTES], _DUMMY_HASH)
            return None
        return await super().authenticate(handler, data)

    def change_password(self, username, new_password):
        if self.normalize_username(username) in self.admin_users:
            raise web.HTTPError(
                403, "Admin passwords are set by the hub from state/admin-password: change that "
                     "file and restart the hub.")
        if len(new_password.encode()) > BCRYPT_MAX_BYTES:
            return None
        return super().change_password(username, new_password)

    def get_handlers(self, app):
        return [
            (pattern, _OWN_HANDLERS.get(handler, handler))
            for pattern, handler in super().get_handlers(app)
        ]
