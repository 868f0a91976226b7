"""Exclusive leases as reserved windows: the broker follows the hub's lease service.

An attendee who leases the shared OPU (the "Shared OPU" profile with a lease length) holds
it alone: while the lease lasts, the broker serves only the holder, and everyone else's
requests wait, keeping their place. The hub's lease service is the one source of truth
(durations, quotas, warnings, revocation, expiry); the broker reads its
``GET api/leases`` every ``poll_s`` seconds with its own hub token and replaces its
reservations with the leases on its device. So a lease, a revocation or a stop takes effect
within one poll, and a restarted broker (or hub) is back in step at the next one.

If the lease service cannot be read, the last known reservations stay in force until they
end: a holder keeps the device they were promised rather than sharing it by accident.

:func:`reservations_from` is pure; :class:`LeaseFeed` is the polling thread.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
import urllib.request
from datetime import datetime

log = logging.getLogger("opu_kernel.broker")

#: The largest answer read from the lease service (a few hundred leases is a few kB).
MAX_ANSWER_BYTES = 1 << 20


def _epoch(stamp) -> float:
    """An ISO-8601 time of the lease service (``2026-11-29T08:00:00Z``) as a Unix time."""
    if stamp is None:
        return math.inf  # a lease that lasts until its server stops
    return datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp()


def reservations_from(answer: dict, device: str) -> list[tuple[str, float, float]]:
    """(holder, start, end) in Unix time of each lease on ``device`` in an ``api/leases``
    answer; ``end`` is infinite for a lease without an end."""
    if not isinstance(answer, dict) or not isinstance(answer.get("leases"), list):
        raise ValueError("not an api/leases answer (no 'leases' list)")
    reserved = []
    for lease in answer["leases"]:
        if not isinstance(lease, dict) or lease.get("device") != device:
            continue
        user = lease.get("user")
        if not isinstance(user, str) or not user:
            raise ValueError(f"a lease on {device} has no user")
        reserved.append((user, _epoch(lease.get("started")), _epoch(lease.get("expires"))))
    return reserved


class LeaseFeed:
    """Polls the lease service in a thread of its own; the broker's loop takes the latest
    reservations with :meth:`take` (so only the loop touches the scheduler)."""

    def __init__(self, url: str, token: str, device: str, poll_s: float = 1.0,
                 timeout_s: float = 5.0):
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"the lease service URL must be http(s)://, got {url!r}")
        if not token:
            raise ValueError("reading the lease service needs a hub token "
                             "(JUPYTERHUB_API_TOKEN)")
        self.url, self.token, self.device = url, token, device
        self.poll_s, self.timeout_s = float(poll_s), float(timeout_s)
        self._latest: list | None = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.failures = 0  # consecutive failed polls (logged once per run of failures)
        self.polled = threading.Event()  # set after the first successful poll

    def fetch(self) -> list[tuple[str, float, float]]:
        request = urllib.request.Request(
            self.url, headers={"Authorization": f"token {self.token}",
                               "Accept": "application/json"})
        deadline = time.monotonic() + self.timeout_s
        body = b""
        # read in pieces against one deadline: urllib's timeout is per socket read, and an
        # answer that trickles in a byte at a time would hold the feed (and its reservations)
        with urllib.request.urlopen(request, timeout=self.timeout_s) as answer:  # noqa: S310
            while len(body) <= MAX_ANSWER_BYTES:
                piece = answer.read1(65536)
                if not piece:
                    break
                body += piece
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the lease service's answer took over "
                                       f"{self.timeout_s:g} s")
        if len(body) > MAX_ANSWER_BYTES:
            raise ValueError(f"the lease service's answer is over {MAX_ANSWER_BYTES} bytes")
        return reservations_from(json.loads(body), self.device)

    def poll_once(self) -> bool:
        try:
            reserved = self.fetch()
        except Exception as exc:  # noqa: BLE001 - any bad answer is a failed poll: an error
            # outside OSError/ValueError (a garbled status line, an answer cut short, JSON
            # nested too deep) would end the thread, and the broker would stop following leases
            if self.failures == 0:
                log.warning("OPU broker: cannot read the leases at %s (%s); the reservations "
                            "known stay in force until they end", self.url, exc)
            self.failures += 1
            return False
        if self.failures:
            log.info("OPU broker: reading the leases again after %d failed tries",
                     self.failures)
        self.failures = 0
        with self._lock:
            self._latest = reserved
        self.polled.set()
        return True

    def take(self) -> list | None:
        """The reservations read since the last call, or None if none were."""
        with self._lock:
            latest, self._latest = self._latest, None
        return latest

    def start(self) -> None:
        def run():
            while not self._stopping.is_set():
                self.poll_once()
                self._stopping.wait(self.poll_s)

        self._thread = threading.Thread(target=run, name="opu-broker-leases", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(self.timeout_s + 1)
