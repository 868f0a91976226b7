"""The opu-lease service (:mod:`opuhub.service`) in a Kubernetes hub pod.

JupyterHub gives a hub-managed service its URL as the proxy reaches it
(``JUPYTERHUB_SERVICE_URL``, here ``http://hub:10101``: the hub's Kubernetes Service), and
``opuhub.service`` listens on that URL's host. In the hub pod that name is the Service's
cluster IP, which is no address of the pod, so the listen would fail. This entry point listens
on ``OPUHUB_LEASE_BIND_URL`` instead (default ``http://0.0.0.0:10101``, every address of the
pod: the network policy decides who may connect); everything else is the service as it is.
"""

from __future__ import annotations

import asyncio
import logging
import os
from urllib.parse import urlparse

DEFAULT_BIND_URL = "http://0.0.0.0:10101"


def bind_url(env) -> str:
    """Where the service listens: ``http://HOST:PORT`` from OPUHUB_LEASE_BIND_URL."""
    url = env.get("OPUHUB_LEASE_BIND_URL") or DEFAULT_BIND_URL
    parsed = urlparse(url)
    try:
        port = parsed.port
    except ValueError:
        port = None
    if parsed.scheme != "http" or not parsed.hostname or not port or parsed.path not in ("", "/"):
        raise ValueError(f"OPUHUB_LEASE_BIND_URL must be http://HOST:PORT, got {url!r}")
    return url


def main():
    from .service import LeaseServiceApp, log

    logging.basicConfig(
        level=logging.INFO, format="[%(levelname)1.1s %(asctime)s opu-lease] %(message)s"
    )
    app = LeaseServiceApp()
    app.url = bind_url(os.environ)  # only where it listens; the hub and proxy keep theirs
    try:
        asyncio.run(app.run())
    except KeyboardInterrupt:  # how the hub stops its services: not an error to report
        log.info("stopped")


if __name__ == "__main__":
    main()
