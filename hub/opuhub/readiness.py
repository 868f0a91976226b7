"""Noticing quickly that a new server answers.

JupyterHub waits for a server with an exponential backoff with full jitter (first waits up to
0.2 s, doubling to 5 s): a server that answers after 2–3 s is noticed up to 1.6–3.2 s late (on
average half of that). Our spawners wait themselves, with short, bounded intervals, so the
hub's own check succeeds at its first try. A refused connection costs the hub almost nothing,
so polling every 50 ms at first is cheap; the interval grows to ``cap`` for slow starts (a
burst), which keeps many waiting spawns from busying the hub's event loop.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterator


def intervals(first: float = 0.05, factor: float = 1.5, cap: float = 0.5) -> Iterator[float]:
    """The waits between two checks: first, first*factor, ... up to cap, then cap forever."""
    wait = first
    while True:
        yield min(wait, cap)
        wait *= factor


async def wait_until(check: Callable[[], Awaitable[bool]], timeout: float, *,
                     first: float = 0.05, factor: float = 1.5, cap: float = 0.5,
                     clock=time.monotonic, sleep=asyncio.sleep) -> bool:
    """Await ``check()`` until it is true (True) or ``timeout`` seconds have passed (False)."""
    deadline = clock() + timeout
    for wait in intervals(first, factor, cap):
        if await check():
            return True
        left = deadline - clock()
        if left <= 0:
            return False
        await sleep(min(wait, left))
    return False  # not reached: intervals() never ends


async def answers(url: str) -> bool:
    """True when an HTTP server answers ``url`` with anything but a 5xx (as the hub requires)."""
    from jupyterhub.httpclient import fetch

    try:
        response = await fetch(url, raise_for_status=False, allow_redirects=False)
    except Exception:  # not listening yet, reset while it starts, ...: not ready
        return False
    response.release()
    return response.status < 500


def api_url(start_result, base_url: str, path: str = "api") -> str | None:
    """The URL the hub checks (``<server>/<base_url>/api``; or another ``path``) from what
    Spawner.start returned: (ip, port) or a URL. None when this wait cannot do the check
    (https: internal TLS)."""
    if isinstance(start_result, str):
        url = start_result.rstrip("/")
    elif isinstance(start_result, tuple | list) and len(start_result) == 2:
        ip, port = start_result
        host = f"[{ip}]" if ":" in str(ip) else ip
        url = f"http://{host}:{int(port)}"
    else:
        return None
    if not url.startswith("http://"):
        return None
    base = base_url.strip("/")
    return f"{url}/{base}/{path}" if base else f"{url}/{path}"


async def kernel_warm(url: str, token: str, wait: float = 0) -> bool:
    """True when the server's pre-started kernels are done starting (or it has none, or it
    does not tell: an image without opuhub_singleuser answers 404), from
    ``<base_url>opuhub/prestart`` asked with the server's own token. ``wait``: seconds the
    server may hold a "starting" answer back until they are done (it answers the moment they
    are: one request instead of polls; a server that ignores it answers at once)."""
    from jupyterhub.httpclient import fetch

    if wait > 0:
        url = f"{url}?wait={wait:g}"
    try:
        response = await fetch(url, raise_for_status=False, allow_redirects=False,
                               headers={"Authorization": f"token {token}"})
    except Exception:
        return False
    if response.status == 404:
        return True
    if response.status != 200:
        return False
    try:
        return json.loads(await response.text()).get("state") != "starting"
    except Exception:
        return False
