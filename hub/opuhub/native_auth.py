"""NativeAuthenticator (sign-up + admin approval) working on JupyterHub >= 5.

jupyterhub-nativeauthenticator 1.3.0, the latest release, still times logins with the hub's
``statsd`` client, which JupyterHub 5 removed: every password login there ends in HTTP 500
(AttributeError: 'LoginHandler' object has no attribute 'statsd'). Its error-page rendering
also misses the ``sync`` argument JupyterHub passes. This subclass swaps in a login handler
with both fixed and changes nothing else.
"""

from __future__ import annotations

from jupyterhub.handlers.base import BaseHandler
from nativeauthenticator import NativeAuthenticator
from nativeauthenticator.handlers import LoginHandler as NativeLoginHandler


class _NoStatsd:
    """Accepts the timer calls the handler makes and records nothing."""

    def timer(self, name):
        return self

    def start(self):
        return self

    def stop(self, send=True):
        pass


class LoginHandler(NativeLoginHandler):
    statsd = _NoStatsd()

    def render_template(self, name, **ns):
        if name == "error.html":
            # JupyterHub would re-render the login form via _render(sync=True), which this
            # handler's _render cannot do: show the hub's plain error page instead
            return BaseHandler.render_template(self, name, **ns)
        return super().render_template(name, **ns)


class OPUNativeAuthenticator(NativeAuthenticator):
    def get_handlers(self, app):
        return [
            (pattern, LoginHandler if handler is NativeLoginHandler else handler)
            for pattern, handler in super().get_handlers(app)
        ]
