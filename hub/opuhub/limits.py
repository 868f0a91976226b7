"""How big a request body the hub accepts, per kind of endpoint, enforced before it is read.

Tornado's default (100 MB, read into memory, then handed to the handler) let one attendee
stall the hub's event loop for seconds, double its memory, and have JupyterHub store a 50 MB
spawn request in its database. The caps here are applied by :class:`LimitedHTTPServer` as soon
as the request line and headers are in: a declared ``Content-Length`` over the cap is answered
``413`` before the handler runs and without buffering the body, and a chunked body is cut off
(400) at the cap.

Only the hub's own server is covered (``/hub/...``). Notebook uploads go from the proxy to the
user's server, never through the hub, so these caps do not limit them.

:func:`body_limit` is the pure policy; :func:`install` makes every ``tornado.httpserver.HTTPServer``
created afterwards in this process (JupyterHub creates one, after loading its config) a
:class:`LimitedHTTPServer`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from tornado import gen, httputil
from tornado.httpserver import HTTPServer
from tornado.ioloop import IOLoop
from tornado.iostream import StreamClosedError

KIB = 1024
MIB = 1024 * KIB
# after a 413, how much of the refused body is read and dropped, and for how long (see
# answer_and_discard); a bigger or slower body gets its connection cut
LINGER_BYTES = 64 * MIB
LINGER_SECONDS = 10.0


@dataclass(frozen=True)
class BodyLimits:
    """Largest request body, in bytes, per kind of hub endpoint."""

    # POST/PUT/PATCH .../api/users/NAME/server(s)/... and the spawn page: the body is the spawn
    # options ({"profile": "hardware", "lease_minutes": 30} is 45 bytes; the form ~200 with _xsrf)
    spawn: int = 4 * KIB
    # login, sign-up, password change, logout, OAuth: a few hundred bytes legit
    form: int = 16 * KIB
    # POST .../api/users/NAME/tokens: a note of at most 256 characters (opuhub.token_limits),
    # an expiry, a few roles or scopes
    tokens: int = 4 * KIB
    # everything else the hub serves (admin bulk user creation: ~20 bytes per name)
    default: int = 1 * MIB

    def __post_init__(self):
        for name in ("spawn", "form", "tokens", "default"):
            if getattr(self, name) <= 0:
                raise ValueError(f"the {name} body limit must be > 0 bytes, got {getattr(self, name)}")


# the opu-lease service only answers GET and DELETE: no body is legitimate there
SERVICE_LIMITS = BodyLimits(default=64 * KIB)

# Matched anywhere in the path, so a base_url prefix (/prefix/hub/...) is covered too. Matching
# too much only applies a smaller cap; every path still gets at most the default.
_SPAWN = re.compile(r"/hub/(spawn|api/users/[^/]+/servers?)(/|$)")
_FORM = re.compile(r"/hub/(login|signup|change-password|logout|accept-share|api/oauth2)(/|$)")
_TOKENS = re.compile(r"/hub/api/users/[^/]+/tokens(/|$)")


def body_limit(path: str, limits: BodyLimits) -> int:
    """The cap for a request to ``path`` (the request target; its query is ignored)."""
    path = path.split("?", 1)[0]
    if _SPAWN.search(path):
        return limits.spawn
    if _TOKENS.search(path):
        return limits.tokens
    if _FORM.search(path):
        return limits.form
    return limits.default


def declared_length(headers: httputil.HTTPHeaders) -> int | None:
    """The Content-Length a request announces; None when absent (chunked or no body)."""
    raw = headers.get("Content-Length")
    if raw is None:
        return None
    try:
        return int(raw.split(",")[0].strip())
    except ValueError:
        return None  # tornado refuses it with a 400 itself


def too_large_response(limit: int) -> bytes:
    """A complete HTTP/1.1 413 response that closes the connection (the body stays unread)."""
    body = json.dumps(
        {
            "status": 413,
            "message": f"Request body too large: this hub accepts at most {limit} bytes here. "
            "Send less: spawn options, forms and tokens need only a few hundred bytes.",
        }
    ).encode()
    head = (
        "HTTP/1.1 413 Payload Too Large\r\n"
        "Content-Type: application/json; charset=UTF-8\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("latin1") + body


async def answer_and_discard(stream, limit: int, length: int) -> None:
    """Send the 413, then read and drop what the client still sends before hanging up.

    Closing a socket with unread input makes the kernel reset the connection, and the
    proxy in front would then turn our 413 into a 503. So the rest of the body is read in
    small chunks and dropped (never held), for at most LINGER_BYTES and LINGER_SECONDS."""
    deadline = IOLoop.current().time() + LINGER_SECONDS
    remaining = min(length, LINGER_BYTES)
    try:
        await stream.write(too_large_response(limit))
        while remaining > 0:
            chunk = await gen.with_timeout(
                deadline, stream.read_bytes(min(64 * KIB, remaining), partial=True),
                quiet_exceptions=StreamClosedError)
            remaining -= len(chunk)
    except (StreamClosedError, TimeoutError):
        pass
    finally:
        stream.close()


class _BodyLimitDelegate(httputil.HTTPMessageDelegate):
    """Wraps the application's delegate for one request; decides on the headers alone."""

    def __init__(self, delegate, request_conn, limits: BodyLimits):
        self.delegate = delegate
        self.request_conn = request_conn
        self.limits = limits

    def headers_received(self, start_line, headers):
        limit = body_limit(start_line.path, self.limits)
        length = declared_length(headers)
        if length is not None and length > limit:
            self._refuse(limit, length)
            return None
        # a chunked body is cut off (400, connection closed) once it passes the cap
        self.request_conn.set_max_body_size(limit)
        return self.delegate.headers_received(start_line, headers)

    def _refuse(self, limit: int, length: int) -> None:
        # take the stream from tornado so that it never buffers the body ("Expect:
        # 100-continue" clients get the 413 before sending anything)
        stream = self.request_conn.detach()
        IOLoop.current().add_callback(answer_and_discard, stream, limit, length)

    def data_received(self, chunk):
        return self.delegate.data_received(chunk)

    def finish(self):
        return self.delegate.finish()

    def on_connection_close(self):
        return self.delegate.on_connection_close()


class LimitedHTTPServer(HTTPServer):
    """A tornado HTTPServer that applies :class:`BodyLimits` to every request."""

    def initialize(self, *args, body_limits: BodyLimits | None = None, **kwargs):
        self.body_limits = body_limits or BodyLimits()
        # the largest cap is also the connection-level ceiling (tornado's default is 100 MB)
        kwargs.setdefault("max_body_size", max(
            self.body_limits.spawn, self.body_limits.form, self.body_limits.tokens,
            self.body_limits.default))
        super().initialize(*args, **kwargs)

    def start_request(self, server_conn, request_conn):
        delegate = super().start_request(server_conn, request_conn)
        return _BodyLimitDelegate(delegate, request_conn, self.body_limits)


def limits_from_settings(settings) -> BodyLimits:
    """:class:`BodyLimits` from ``OPUHUB_MAX_*_BYTES``; 0 or less stops the hub, naming it."""
    from .settings import SettingsError

    values = {
        "spawn": ("OPUHUB_MAX_SPAWN_OPTIONS_BYTES", settings.max_spawn_options_bytes),
        "form": ("OPUHUB_MAX_FORM_BYTES", settings.max_form_bytes),
        "default": ("OPUHUB_MAX_BODY_BYTES", settings.max_body_bytes),
    }
    for var, value in values.values():
        if value < 256:  # below that even a login form or an empty JSON request is refused
            raise SettingsError(f"{var} must be at least 256 bytes, got {value}")
    return BodyLimits(**{kind: value for kind, (_, value) in values.items()})


def install(limits: BodyLimits) -> None:
    """Make HTTPServers created from now on in this process :class:`LimitedHTTPServer`.

    Called from the hub's config (JupyterHub has no setting for its server's body size and
    builds its ``HTTPServer`` after loading the config)."""
    HTTPServer.configure(LimitedHTTPServer, body_limits=limits)
