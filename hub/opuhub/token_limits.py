"""How many API tokens a user may hold, for how long, and how long their note may be.

JupyterHub stores every token a user asks for (``POST /hub/api/users/NAME/tokens``, which the
hub's token page uses too) with whatever note came with it (the column's declared 1023
characters are not enforced by SQLite), and such a token never expires. One attendee's 300
requests with a 15,000-character note grew the hub's database by 5 MB in 8 s. Now:

- the note is a string of at most ``max_note_chars`` (256) characters, and ``expires_in`` a
  whole number of seconds >= 1 (JupyterHub stored a token that had already expired, answered
  500, and kept the row): anything else is a 400 before anything is stored. The request body
  itself is capped at 4 KiB (:mod:`opuhub.limits`);
- a user holds at most ``max_tokens`` (50) live API tokens; the next request gets a 403 that
  says to delete old ones (expired ones are deleted first, so they never count);
- every token requested through the API expires: JupyterHub's own
  ``token_expires_in_max_seconds`` (``OPUHUB_TOKEN_MAX_SECONDS``, 30 days, set by
  :mod:`opuhub.hubconfig`) is the default and the maximum.

:func:`install` puts :class:`LimitedTokenListHandler` in the place of JupyterHub's handler of
that route. The proxy and the hub's own port serve the same routes, so neither goes round it.
Tokens the hub makes itself (each server's, the services' from the config, OAuth logins to a
server or service) do not pass here and are not counted.
"""

from __future__ import annotations

from dataclasses import dataclass

from jupyterhub import apihandlers, orm
from jupyterhub.apihandlers.users import UserTokenListAPIHandler
from jupyterhub.utils import utcnow
from tornado import web

API_CLIENT = "jupyterhub"  # the client of API tokens; OAuth logins have their service's


@dataclass(frozen=True)
class TokenLimits:
    max_note_chars: int = 256
    max_tokens: int = 50  # live API tokens per user

    def __post_init__(self):
        if self.max_note_chars < 1 or self.max_tokens < 1:
            raise ValueError("token limits must be at least 1")


def request_problem(body, limits: TokenLimits) -> str | None:
    """Why a token request's body is refused (400), or None (pure)."""
    if not isinstance(body, dict):
        return None  # JupyterHub answers that one itself
    note = body.get("note")
    if note is not None and not isinstance(note, str):
        return "token note must be a string"
    if note is not None and len(note) > limits.max_note_chars:
        return (f"token note is {len(note)} characters long; at most {limits.max_note_chars} "
                "are kept")
    expires_in = body.get("expires_in")
    if expires_in is not None and (isinstance(expires_in, bool) or not isinstance(expires_in, int)
                                   or expires_in < 1):
        return "token expires_in must be null or a whole number of seconds, at least 1"
    return None


def too_many_message(name: str, count: int, limits: TokenLimits) -> str:
    return (f"{name} already holds {count} API tokens, and this hub keeps at most "
            f"{limits.max_tokens} per user: delete old ones first (the hub's Token page, or "
            f"DELETE /hub/api/users/{name}/tokens/<id>).")


def live_api_tokens(db, orm_user: orm.User) -> list[orm.APIToken]:
    """The user's API tokens that have not expired; expired ones are deleted (as JupyterHub's
    token list does)."""
    now = utcnow(with_tz=False)
    live = []
    for token in list(orm_user.api_tokens):
        if token.expires_at is not None and token.expires_at < now:
            db.delete(token)
        elif token.client_id == API_CLIENT:
            live.append(token)
    db.commit()
    return live


class LimitedTokenListHandler(UserTokenListAPIHandler):
    """JupyterHub's token list and creation, with :class:`TokenLimits`.

    The count is checked once JupyterHub has decided who asks and whether they may (a token,
    a cookie, or a user name and password in the body): the new token is then deleted again
    if it is one too many, so the refusal says nothing to someone without the right."""

    limits = TokenLimits()

    def token_model(self, token):
        self._opuhub_created = token  # JupyterHub's post describes the new token through this
        return super().token_model(token)

    async def post(self, user_name):
        problem = request_problem(self.get_json_body(), self.limits)
        if problem:
            raise web.HTTPError(400, problem)
        self._opuhub_created = None
        await super().post(user_name)
        token = self._opuhub_created
        if token is None or token.user is None:
            return
        live = live_api_tokens(self.db, token.user)
        if len(live) > self.limits.max_tokens:
            self.db.delete(token)
            self.db.commit()
            self.clear()  # the reply with the token is still unsent: replace it
            self.log.warning("refused an API token for %s: %d tokens held", token.user.name,
                             len(live) - 1)
            raise web.HTTPError(403, too_many_message(token.user.name, len(live) - 1, self.limits))


def install(limits: TokenLimits) -> None:
    """Serve the hub's token-list route with :class:`LimitedTokenListHandler`.

    Called from the hub's config, before JupyterHub builds its routes from
    ``jupyterhub.apihandlers.default_handlers``; installing twice is harmless."""
    LimitedTokenListHandler.limits = limits
    routes = apihandlers.default_handlers
    found = False
    for i, route in enumerate(routes):
        if route[1] in (UserTokenListAPIHandler, LimitedTokenListHandler):
            routes[i] = (route[0], LimitedTokenListHandler, *route[2:])
            found = True
    if not found:
        raise RuntimeError("JupyterHub's token route was not found: this JupyterHub version is "
                           "not one OPU Hub knows; its token limits cannot be applied")
