"""Admission of server starts: a workshop burst degrades into a short line, not into timeouts.

When a room clicks "Start" in the same minute, starting every server at once only shares the
cores between all of them: everyone waits for the slowest, and starts run into their timeouts.
Here at most ``limit`` starts run at a time (about one per core: a start is mostly CPU), the
others wait in arrival order and know their place in line, which the spawn page shows.

A start holds its slot from before its container (or process) is created until its server
answers; then the next in line goes. Pure asyncio, one instance per hub process
(:data:`STARTS`); no I/O.
"""

from __future__ import annotations

import asyncio
import os
from collections import deque


def default_limit() -> int:
    """Starts at a time when none is configured: one more than the cores this hub may use (a
    start also waits for Docker and the disk; measured on 2 cores, 3 at a time finished a
    30-attendee burst about 13 % sooner than 2)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, cores) + 1


class Ticket:
    """One start's place: ``position`` 0 = admitted (starting), n = n-th in line; ``changed``
    is set whenever the position changes (the progress page waits on it)."""

    def __init__(self, admission: Admission, name: str):
        self.admission = admission
        self.name = name
        self.changed = asyncio.Event()
        self._admitted = asyncio.get_running_loop().create_future()
        self.released = False

    @property
    def admitted(self) -> bool:
        return self._admitted.done() and not self._admitted.cancelled()

    @property
    def position(self) -> int:
        return self.admission.position(self)

    async def wait(self) -> None:
        """Until this start may go. Cancelled (the spawn was abandoned): the place is freed."""
        try:
            await asyncio.shield(self._admitted)
        except asyncio.CancelledError:
            self.release()
            raise

    def release(self) -> None:
        """The start is over (answered, failed or abandoned): idempotent."""
        self.admission.release(self)

    def __repr__(self):
        state = "released" if self.released else f"position {self.position}"
        return f"<Ticket {self.name} {state}>"


class Admission:
    def __init__(self, limit: int | None = None):
        self.limit = limit or default_limit()
        self._running: set[Ticket] = set()
        self._waiting: deque[Ticket] = deque()

    @property
    def starting(self) -> int:
        return len(self._running)

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def enter(self, name: str, limit: int | None = None) -> Ticket:
        """A new start joins the line (``limit``: the current setting, when it changed)."""
        if limit:
            self.limit = limit
        ticket = Ticket(self, name)
        self._waiting.append(ticket)
        self._admit()
        return ticket

    def position(self, ticket: Ticket) -> int:
        if ticket in self._running or ticket.released:
            return 0
        try:
            return self._waiting.index(ticket) + 1
        except ValueError:
            return 0

    def release(self, ticket: Ticket) -> None:
        if ticket.released:
            return
        ticket.released = True
        self._running.discard(ticket)
        try:
            self._waiting.remove(ticket)
        except ValueError:
            pass
        if not ticket._admitted.done():
            ticket._admitted.cancel()
        self._admit()

    def _admit(self) -> None:
        while self._waiting and len(self._running) < self.limit:
            ticket = self._waiting.popleft()
            self._running.add(ticket)
            ticket._admitted.set_result(None)
        # everyone's place may have moved: wake the progress pages
        for ticket in (*self._running, *self._waiting):
            ticket.changed.set()


STARTS = Admission()  # the hub's one line of starts


def line_message(position: int, starting: int) -> str:
    """What the spawn page says to someone waiting."""
    ahead = "1 person is" if position == 2 else f"{position - 1} people are"
    if position <= 1:
        return (f"You are next in line: {starting} server(s) are starting on this machine; "
                "yours starts as soon as one is up.")
    return (f"You are number {position} in line: {ahead} ahead of you and {starting} "
            "server(s) are starting; yours starts in turn. No need to reload.")
