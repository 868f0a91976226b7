"""The OPU lease service: a hub-managed JupyterHub service at /services/opu-lease/.

- ``GET  api/leases``            devices, who holds them and until when (any hub user)
- ``GET  api/usage``             OPU seconds per user (everyone's with the scope
                                 ``custom:opu-lease:read-usage``; otherwise one's own)
- ``DELETE api/leases/DEVICE``   revoke (scope ``custom:opu-lease:revoke``: admins, and tutors
                                 of OPUHUB_LEASE_TUTORS): stop the holder's server, end the lease
                                 (a window on the shared OPU just ends: the server carries on)
- ``GET  metrics``               Prometheus: active leases, seconds per user, refusals
                                 (needs the read:metrics scope unless OPUHUB_METRICS_PUBLIC)

Who may do what is decided by the hub's scopes in the caller's token (``HubAuth.check_scopes``),
never by the admin flag, so an operator grants a tutor revoke with a role, not admin.

It also enforces the lease every OPUHUB_LEASE_CHECK_INTERVAL seconds: warn holders shortly
before the end, stop servers whose lease is over, and end leases whose server is gone (crash,
lost container, hub restart). Its hub role holds only list:users, read:servers, delete:servers.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from urllib.parse import quote, unquote, urlparse

from jupyterhub.services.auth import HubOAuth, HubOAuthCallbackHandler, HubOAuthenticated
from jupyterhub.utils import url_path_join
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from tornado import httpclient, ioloop, web

from . import limits
from .host import lease_db_path
from .lease import (
    ENDED_EXPIRED,
    ENDED_REVOKED,
    ENDED_SERVER_GONE,
    Lease,
    format_clock,
    iso_utc,
    plan_enforcement,
)
from .lease_store import LeaseStore
from .metrics import registry_for
from .scopes import READ_USAGE, REVOKE
from .settings import Settings, hub_timezone, settings_from_env

log = logging.getLogger("opuhub.service")


def lease_json(lease: Lease, tz, now: float) -> dict:
    return {
        "device": lease.device,
        "user": lease.username,
        "server": lease.server_name,
        "started": iso_utc(lease.started_at),
        "expires": None if lease.expires_at is None else iso_utc(lease.expires_at),
        "until": None if lease.expires_at is None else format_clock(lease.expires_at, tz, now),
        "seconds_left": None if lease.expires_at is None else max(0, lease.expires_at - now),
        "warned": lease.warned_at is not None,
    }


class HubAPI:
    """The few hub REST calls the enforcer needs, with this service's own token."""

    def __init__(self, api_url: str, token: str):
        self.api_url = api_url.rstrip("/")
        self.token = token
        self.client = httpclient.AsyncHTTPClient()

    async def request(self, method: str, path: str, **kw):
        headers = {"Authorization": f"token {self.token}", **kw.pop("headers", {})}
        return await self.client.fetch(
            self.api_url + path, method=method, headers=headers, raise_error=False,
            request_timeout=30, **kw
        )

    async def running_servers(self) -> set[tuple[str, str]]:
        """(user, server name) of every server that is running or starting."""
        running: set[tuple[str, str]] = set()
        offset = 0
        while True:
            resp = await self.request(
                "GET", f"/users?state=active&offset={offset}&limit=200",
                headers={"Accept": "application/jupyterhub-pagination+json"},
            )
            if resp.code != 200:
                raise RuntimeError(f"hub API /users answered {resp.code}: {resp.body[:200]!r}")
            page = json.loads(resp.body)
            for user in page["items"]:
                for server_name in (user.get("servers") or {}):
                    running.add((user["name"], server_name))
            nxt = (page.get("_pagination") or {}).get("next")
            if not nxt:
                return running
            offset = nxt["offset"]

    async def stop_server(self, username: str, server_name: str) -> int:
        path = f"/users/{quote(username, safe='')}/server"
        if server_name:
            path = f"/users/{quote(username, safe='')}/servers/{quote(server_name, safe='')}"
        resp = await self.request("DELETE", path)
        return resp.code


class Enforcer:
    def __init__(self, store: LeaseStore, hub: HubAPI, warning: float, grace: float,
                 windows: frozenset[str] = frozenset()):
        self.store = store
        self.hub = hub
        self.warning = warning
        self.grace = grace
        #: devices whose lease is a reserved window on the shared OPU's broker, not a device
        #: in the holder's server: such a lease ends without stopping the server
        self.windows = windows
        # lease -> when its server was first seen missing: a stop in progress releases the
        # lease itself (post-stop hook, reason "stopped"); only one missing for a whole grace
        # period is an orphan
        self._missing_since: dict[tuple[str, float], float] = {}

    async def end(self, lease: Lease, reason: str) -> None:
        """End ``lease`` with ``reason``: a reserved window at once (its broker then serves
        everyone again; the holder's server and kernels carry on), a device by stopping the
        holder's server (:meth:`end_with_stop`)."""
        if lease.device in self.windows:
            self.store.release_if_unchanged(lease, reason)
        else:
            await self.end_with_stop(lease, reason)

    async def end_with_stop(self, lease: Lease, reason: str) -> None:
        """Stop the holder's server; its stop hook ends the lease with ``reason``. The device
        stays leased until the server is gone, so it is never in two containers at once."""
        self.store.mark_ending(lease, reason)
        code = await self.hub.stop_server(lease.username, lease.server_name)
        if code in (400, 404):  # no such server (any more): nothing will run the stop hook
            self.store.release_if_unchanged(lease, reason)
        elif code >= 300:
            log.error("could not stop %s's server (HTTP %s) to end the lease on %s",
                      lease.username, code, lease.device)

    async def check(self) -> None:
        now = time.time()
        leases = self.store.active()
        if not leases:
            return
        try:
            running = await self.hub.running_servers()
        except Exception as e:
            log.warning("cannot list servers (%s); checking expiry only", e)
            running = None
        actions = plan_enforcement(leases, now, self.warning, running, self.grace)
        missing = {(a.lease.device, a.lease.started_at) for a in actions if a.kind == "orphan"}
        self._missing_since = {key: self._missing_since.get(key, now) for key in missing}
        for action in actions:
            lease = action.lease
            if action.kind == "orphan" and (
                now - self._missing_since[(lease.device, lease.started_at)] < self.grace
            ):
                continue
            window = lease.device in self.windows
            if action.kind == "warn":
                log.warning("OPU lease of %s on %s: %s; %s then", lease.username, lease.device,
                            action.detail, "the reservation ends" if window else
                            "the server will be stopped (files are kept)")
                self.store.mark_warned(lease.device, now)
            elif action.kind == "expire":
                log.warning("OPU lease of %s on %s expired: %s", lease.username, lease.device,
                            "the device is shared again" if window else "stopping the server")
                await self.end(lease, ENDED_EXPIRED)
            elif action.kind == "orphan":
                log.warning("OPU lease of %s on %s ended: %s", lease.username, lease.device,
                            action.detail)
                self.store.release_if_unchanged(lease, ENDED_SERVER_GONE)


class BaseHandler(HubOAuthenticated, web.RequestHandler):
    def initialize(self, app):
        self.app = app
        self.hub_auth = app.hub_auth

    def write_json(self, data, status: int = 200):
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(data, indent=1))

    def write_error(self, status_code, **kwargs):
        exc = kwargs.get("exc_info", (None, None))[1]
        message = getattr(exc, "log_message", None) or self._reason
        self.write_json({"status": status_code, "message": message}, status_code)

    def has_scope(self, user: dict, scope: str) -> bool:
        return bool(self.hub_auth.check_scopes(scope, user))

    def require_user(self) -> dict:
        user = self.current_user
        if user:
            return user
        if self.request.method == "GET" and "Authorization" not in self.request.headers:
            # a browser: log in through the hub (OAuth) and come back here
            self.redirect(self.get_login_url())
            raise web.Finish()
        raise web.HTTPError(403, "a hub token or login is required")


class LeasesHandler(BaseHandler):
    def get(self):
        self.require_user()
        now = time.time()
        leases = self.app.store.active()
        held = {lease.device: lease for lease in leases}
        self.write_json(
            {
                "devices": [
                    {"device": d, "free": d not in held,
                     "lease": lease_json(held[d], self.app.tz, now) if d in held else None}
                    for d in self.app.devices
                ],
                "leases": [lease_json(lease, self.app.tz, now) for lease in leases],
            }
        )


class LeaseHandler(BaseHandler):
    async def delete(self, device):
        user = self.require_user()
        device = unquote(device)
        matches = [
            lease for lease in self.app.store.active()
            if device in (lease.device, os.path.basename(lease.device))
        ]
        # who may stop anyone's server (admins made in the admin page, the CLI) may revoke
        # too: revoking does just that. Not delete:servers!user=NAME: a holder ends their
        # own lease by stopping their server, not through this API.
        if not (self.has_scope(user, REVOKE) or self.has_scope(user, "delete:servers")):
            raise web.HTTPError(403, f"revoking a lease needs the {REVOKE} scope "
                                "(admins and OPUHUB_LEASE_TUTORS have it)")
        if not matches:
            raise web.HTTPError(404, f"no lease on {device}")
        if len(matches) > 1:  # e.g. opu0 on two nodes: name the one meant
            names = ", ".join(lease.device for lease in matches)
            raise web.HTTPError(409, f"{device} is leased on several devices ({names}): "
                                "revoke one by its full name")
        lease = matches[0]
        log.warning("%s revokes the lease of %s on %s", user["name"], lease.username,
                    lease.device)
        await self.app.enforcer.end(lease, ENDED_REVOKED)
        self.write_json({"revoked": lease_json(lease, self.app.tz, time.time())})


class UsageHandler(BaseHandler):
    def get(self):
        user = self.require_user()
        seconds = self.app.store.seconds_by_user()
        if not self.has_scope(user, READ_USAGE):
            seconds = {user["name"]: seconds.get(user["name"], 0.0)}
        self.write_json({"seconds": seconds})


class MetricsHandler(BaseHandler):
    def get(self):
        if not self.app.metrics_public:
            user = self.require_user()
            if not self.has_scope(user, "read:metrics"):
                raise web.HTTPError(403, "the read:metrics scope is required")
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.finish(generate_latest(self.app.registry))


class LeaseServiceApp:
    """The service's parts, from the ``OPUHUB_*`` variables the hub hands it (the same parser
    and defaults as the hub's, opuhub.settings) and JupyterHub's ``JUPYTERHUB_*`` ones."""

    def __init__(self, environ=None, hub_auth=None, hub_api: HubAPI | None = None):
        env = os.environ if environ is None else environ
        settings: Settings = settings_from_env(env)
        self.prefix = env.get("JUPYTERHUB_SERVICE_PREFIX", "/services/opu-lease/")
        self.store = LeaseStore(lease_db_path(settings))
        self.devices = list(settings.devices or [])
        self.tz = hub_timezone(settings.timezone)
        self.metrics_public = settings.metrics_public
        self.interval = settings.lease_check_interval
        # the singleton: HubOAuthCallbackHandler uses HubOAuth.instance(), and the OAuth state
        # (with the PKCE verifier) lives in that object's memory
        self.hub_auth = hub_auth or HubOAuth.instance(api_token=env["JUPYTERHUB_API_TOKEN"],
                                                      cache_max_age=5)
        self.enforcer = Enforcer(
            self.store,
            hub_api or HubAPI(env["JUPYTERHUB_API_URL"], env["JUPYTERHUB_API_TOKEN"]),
            warning=settings.lease_warning_seconds,
            grace=settings.lease_grace_seconds,
            windows=frozenset([settings.shared_opu] if settings.shared_opu else []),
        )
        self.registry = registry_for(self.store, self.devices)
        self.url = env.get("JUPYTERHUB_SERVICE_URL", "http://127.0.0.1:10101")

    def make_app(self) -> web.Application:
        args = {"app": self}
        p = self.prefix
        return web.Application(
            [
                (url_path_join(p, "oauth_callback"), HubOAuthCallbackHandler),
                (url_path_join(p, "api/leases"), LeasesHandler, args),
                (url_path_join(p, "api/leases/(.+)"), LeaseHandler, args),
                (url_path_join(p, "api/usage"), UsageHandler, args),
                (url_path_join(p, "metrics"), MetricsHandler, args),
                (p, LeasesHandler, args),
            ],
            cookie_secret=os.urandom(32),
            login_url=self.hub_auth.login_url,
        )

    async def run(self):
        parsed = urlparse(self.url)
        # oversized bodies get 413, never buffered (tornado would hold up to 100 MB each)
        server = limits.LimitedHTTPServer(self.make_app(), body_limits=limits.SERVICE_LIMITS)
        server.listen(parsed.port, parsed.hostname)
        log.info("OPU lease service on %s%s, devices: %s", self.url, self.prefix,
                 ", ".join(self.devices) or "none")

        async def check():
            try:
                await self.enforcer.check()
            except Exception:
                log.exception("lease enforcement failed; retrying next round")

        await check()  # right away: after a hub restart, reconcile before anything else
        ioloop.PeriodicCallback(check, self.interval * 1000).start()
        await asyncio.Event().wait()


def main():
    logging.basicConfig(
        level=logging.INFO, format="[%(levelname)1.1s %(asctime)s opu-lease] %(message)s"
    )
    try:
        asyncio.run(LeaseServiceApp().run())
    except KeyboardInterrupt:  # how the hub stops its services: not an error to report
        log.info("stopped")


if __name__ == "__main__":
    main()
