"""Who uses the shared OPU next: deficit round robin over camera frames.

Pure: no sockets, no threads; time comes from an injected ``clock``. The broker's device
thread asks :meth:`FairScheduler.next_slice` for the next piece of work whenever the device is
free, and everything else (submissions, cancellations, status) goes through the same object
under the broker's lock.

The policy:

- **Fair share by frames.** Each user with waiting work takes turns in a round; a turn grants
  ``quantum × weight`` frames of credit (the *deficit*), spent on slices of that user's oldest
  request. So over any stretch during which users keep work waiting, their frames follow their
  weights, whatever their batch sizes.
- **Maximum slice.** One device operation is at most ``max_slice`` frames: a 100,000-row batch
  is cut into slices, so a 10-row request waits for at most one round of turns, not for the
  whole batch. (A slice never leaves a single row behind: one-row products take another BLAS
  path than multi-row ones, and the simulated device must give the in-process simulator's
  bytes.)
- **Newcomers first.** A user who had no work waiting for a whole round gets its first turn
  before the users in the round (then joins the round's end), as with FQ-CoDel's new flows
  (RFC 8290): an occasional small request is served after about one slice, not one round. A
  user whose work runs out stays in the round as a placeholder until its turn comes back, so
  returning at once (the next cell) keeps its place and credit but buys no early turn.
- **Short credit retention.** A notebook sends one request per cell. When a user's last
  request ends mid-turn, the unused credit (at most one quantum) is kept for ``credit_ttl_s``,
  so a user who comes straight back with the next request is not short-changed for the
  partial turn; after that it is forfeited, so idle users do not hoard.
- **Quota** (optional): at most ``quota_frames`` frames per user over a rolling
  ``quota_window_s``; a request that would exceed it is refused at submission.
- **Reserved windows**: during a reservation the device serves only its holder (the exclusive
  lease); everyone else's requests wait, keeping their place.
- **Charges.** A slice that held the device longer than its frames say (on the simulated
  device: a request whose new seed or shape made the simulator draw a matrix of a GiB, seconds
  for a couple of rows) is charged the difference in frames (:meth:`FairScheduler.charge`):
  its user's turns are skipped until paid, and it counts in her share and quota. When every
  user with work is in debt, the rounds none of them could use pass at once: the device never
  idles while work waits.
"""

from __future__ import annotations

import collections
import math
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any


class QuotaExceeded(ValueError):
    """A request that would take its user over the quota; the text says when it resets."""


@dataclass(eq=False)
class Job:
    """One transform request: ``frames`` camera frames (one per input row) for ``user``."""

    key: Hashable
    user: str
    frames: int
    submitted: float = 0.0
    handed: int = 0  # frames already given to the device
    cancelled: bool = False
    data: Any = None  # whatever the broker keeps with it

    @property
    def remaining(self) -> int:
        return self.frames - self.handed


@dataclass(frozen=True)
class Slice:
    """Frames [start, stop) of ``job``: one device operation."""

    job: Job
    start: int
    stop: int

    @property
    def frames(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class Reservation:
    user: str
    start: float
    end: float

    def covers(self, now: float) -> bool:
        return self.start <= now < self.end


@dataclass
class Rolling:
    """Frames counted in buckets over a rolling window."""

    window_s: float
    buckets: collections.deque = field(default_factory=collections.deque)

    @property
    def width(self) -> float:
        return self.window_s / 60

    def add(self, now: float, frames: int) -> None:
        start = math.floor(now / self.width) * self.width
        if self.buckets and self.buckets[-1][0] == start:
            self.buckets[-1][1] += frames
        else:
            self.buckets.append([start, frames])
        self.expire(now)

    def expire(self, now: float) -> None:
        while self.buckets and self.buckets[0][0] + self.width <= now - self.window_s:
            self.buckets.popleft()

    def total(self, now: float) -> int:
        self.expire(now)
        return sum(count for _, count in self.buckets)

    def frees_at(self, now: float, needed: int) -> float:
        """When enough old frames have left the window for ``needed`` more frames."""
        self.expire(now)
        excess = self.total(now) - needed
        for start, count in self.buckets:
            excess -= count
            if excess <= 0:
                return start + self.width + self.window_s
        return now


class FairScheduler:
    def __init__(self, clock: Callable[[], float] = time.monotonic, quantum: int = 32,
                 max_slice: int = 256, weights: dict[str, float] | None = None,
                 default_weight: float = 1.0, quota_frames: int | None = None,
                 quota_window_s: float = 3600.0, credit_ttl_s: float = 2.0,
                 share_window_s: float = 60.0):
        if quantum < 1 or max_slice < 2:
            raise ValueError("quantum must be >= 1 frame and max_slice >= 2 frames")
        self.clock = clock
        self.quantum = int(quantum)
        self.max_slice = int(max_slice)
        self.weights = {}
        for user, weight in (weights or {}).items():
            self.weights[user] = check_weight(weight, user)
        self.default_weight = check_weight(default_weight, "default")
        self.quota_frames = quota_frames
        self.quota_window_s = float(quota_window_s)
        self.credit_ttl_s = float(credit_ttl_s)
        self.share_window_s = float(share_window_s)
        self.queues: dict[str, collections.deque[Job]] = {}
        #: Users in turn: those who just got work (served first, one turn), then the round.
        self.new: collections.deque[str] = collections.deque()
        self.old: collections.deque[str] = collections.deque()
        self.deficit: dict[str, float] = {}
        self.turn: str | None = None  # whose turn has started (credit granted)
        self.idle_since: dict[str, float] = {}
        self.served: dict[str, int] = collections.defaultdict(int)
        self.recent: dict[str, Rolling] = {}
        self.quota_use: dict[str, Rolling] = {}
        self.reservations: list[Reservation] = []

    # -- configuration --------------------------------------------------------------------
    def weight(self, user: str) -> float:
        return self.weights.get(user, self.default_weight)

    def grant(self, user: str) -> float:
        """Credit per turn: at least one frame, so every turn makes progress."""
        return max(1.0, self.quantum * self.weight(user))

    def reserve(self, user: str, start: float, end: float) -> Reservation:
        if end <= start:
            raise ValueError("a reservation must end after it starts")
        for other in self.reservations:
            if other.user != user and other.start < end and start < other.end:
                raise ValueError(f"the device is reserved for {other.user} then")
        reservation = Reservation(user, start, end)
        self.reservations.append(reservation)
        return reservation

    def release(self, user: str) -> None:
        self.reservations = [r for r in self.reservations if r.user != user]

    def replace_reservations(self, windows) -> None:
        """Make ``windows`` ((holder, start, end) on this scheduler's clock) the reservations,
        as the hub's leases say (:mod:`.leases`; the lease store already keeps them apart)."""
        self.reservations = [Reservation(user, start, end) for user, start, end in windows
                             if end > start]

    def reservation_at(self, now: float) -> Reservation | None:
        self.reservations = [r for r in self.reservations if r.end > now]
        return next((r for r in self.reservations if r.covers(now)), None)

    # -- work in ----------------------------------------------------------------------------
    def submit(self, job: Job) -> None:
        if job.frames < 1:
            raise ValueError("a job has at least one frame")
        now = self.clock()
        job.submitted = now
        user = job.user
        if self.quota_frames is not None:
            use = self.quota_use.setdefault(user, Rolling(self.quota_window_s))
            queued = sum(j.remaining for j in self.queues.get(user, ()))
            if use.total(now) + queued + job.frames > self.quota_frames:
                wait = use.frees_at(now, self.quota_frames - queued - job.frames) - now
                raise QuotaExceeded(
                    f"{user} has used {use.total(now)} of {self.quota_frames} frames allowed "
                    f"per {self.quota_window_s:.0f} s (+{queued} queued); this request needs "
                    f"{job.frames}. Try again in {max(1, math.ceil(wait))} s or send fewer rows.")
        self.queues.setdefault(user, collections.deque()).append(job)
        if user not in self.new and user not in self.old:
            idle = self.idle_since.pop(user, None)
            if idle is None or now - idle > self.credit_ttl_s:
                self.deficit[user] = min(self.deficit.get(user, 0.0), 0.0)
            self.new.append(user)

    def cancel(self, job: Job) -> bool:
        """Withdraw what is left of ``job``; True if it was still waiting."""
        job.cancelled = True
        queue = self.queues.get(job.user)
        if not queue or job not in queue:
            return False
        queue.remove(job)
        if not queue:
            self._emptied(job.user)
        return True

    # -- work out ---------------------------------------------------------------------------
    def next_slice(self) -> Slice | None:
        """The next device operation, or None when nothing may run now."""
        now = self.clock()
        reservation = self.reservation_at(now)
        if reservation is not None:
            queue = self.queues.get(reservation.user)
            if not queue:
                return None  # reserved and its holder has nothing to do: the device idles
            return self._take(reservation.user, queue[0], self.max_slice, now)
        piece = self._next_in_turn(now)
        if piece is None and self._skip_rounds_in_debt():
            piece = self._next_in_turn(now)
        return piece

    def _next_in_turn(self, now: float) -> Slice | None:
        for _ in range(len(self.new) + 2 * len(self.old) + 1):
            ring = self.new or self.old
            if not ring:
                return None
            user = ring[0]
            if not self.queues.get(user):
                self._leave(user)  # an emptied user's placeholder in the old round
                continue
            if self.turn != user:
                self.turn = user
                self.deficit[user] = self.deficit.get(user, 0.0) + self.grant(user)
            credit = self.deficit[user]
            if credit >= 1:
                job = self.queues[user][0]
                frames = min(self.max_slice, int(credit), job.remaining)
                if job.remaining - frames == 1:
                    frames += 1
                self.deficit[user] = credit - frames
                piece = self._take(user, job, frames, now)
                if self.queues.get(user) and self.deficit[user] < 1:
                    self._end_turn(user)
                return piece
            self._end_turn(user)
        return None

    def charge(self, user: str, frames: int) -> None:
        """Count ``frames`` more against ``user``: time her last slice held the device
        beyond its frames. Her coming turns are skipped until they are paid."""
        if frames <= 0:
            return
        self.deficit[user] = self.deficit.get(user, 0.0) - frames
        self._count(user, frames, self.clock())

    def _skip_rounds_in_debt(self) -> bool:
        """After a round in which no one with work had credit (all in debt from charges):
        grant at once the rounds it takes for the first of them to have some."""
        waiting = self.waiting_users()
        if not waiting:
            return False
        rounds = min(math.ceil((1 - self.deficit.get(u, 0.0)) / self.grant(u)) - 1
                     for u in waiting)
        if rounds < 1:
            return False
        for user in waiting:
            self.deficit[user] = self.deficit.get(user, 0.0) + rounds * self.grant(user)
        return True

    def _count(self, user: str, frames: int, now: float) -> None:
        """``frames`` used by ``user``: in her total, her recent share and her quota."""
        self.served[user] += frames
        self.recent.setdefault(user, Rolling(self.share_window_s)).add(now, frames)
        if self.quota_frames is not None:
            self.quota_use.setdefault(user, Rolling(self.quota_window_s)).add(now, frames)

    def _take(self, user: str, job: Job, frames: int, now: float) -> Slice:
        frames = min(frames, job.remaining)
        piece = Slice(job, job.handed, job.handed + frames)
        job.handed += frames
        self._count(user, frames, now)
        if job.remaining == 0:
            queue = self.queues[user]
            queue.popleft()
            if not queue:
                self._emptied(user)
        return piece

    def _end_turn(self, user: str) -> None:
        """``user`` spent its credit and still has work: to the back of the old round."""
        if self.new and self.new[0] == user:
            self.new.popleft()
            self.old.append(user)
        elif self.old and self.old[0] == user:
            self.old.rotate(-1)
        self.turn = None

    def _emptied(self, user: str) -> None:
        """``user`` has no work left. It stays in the round as a placeholder, at the back,
        removed when its turn comes unless it has work again: a user who comes straight back
        (the next cell) keeps its place and credit and does not get a newcomer's early turn;
        only one who stayed away a whole round does."""
        self.idle_since[user] = self.clock()
        self.deficit[user] = min(self.deficit.get(user, 0.0), self.grant(user))
        if self.turn == user:
            self.turn = None
        if user in self.new:
            self.new.remove(user)
            self.old.append(user)
        elif self.old and self.old[0] == user:
            self.old.rotate(-1)

    def _leave(self, user: str) -> None:
        for ring in (self.new, self.old):
            if user in ring:
                ring.remove(user)
        if self.turn == user:
            self.turn = None
        self.queues.pop(user, None)

    # -- what users see ---------------------------------------------------------------------
    def waiting_users(self) -> list[str]:
        """Users with work, in the order their turns come (new arrivals first)."""
        return [u for u in (*self.new, *self.old) if self.queues.get(u)]

    def queued_jobs(self) -> int:
        return sum(len(q) for q in self.queues.values())

    def queued_frames(self) -> int:
        return sum(j.remaining for q in self.queues.values() for j in q)

    def position(self, user: str) -> int | None:
        """1 when ``user``'s turn is now or next, k when k-1 users go first; None: no work."""
        waiting = self.waiting_users()
        return waiting.index(user) + 1 if user in waiting else None

    def quota(self, user: str) -> dict | None:
        """``user``'s use of the quota (None: no quota)."""
        if self.quota_frames is None:
            return None
        now = self.clock()
        use = self.quota_use.get(user)
        return {"quota_frames": self.quota_frames, "quota_window_s": self.quota_window_s,
                "quota_used_frames": use.total(now) if use else 0}

    def share(self, user: str) -> dict:
        """``user``'s share of the frames served over the last ``share_window_s``, and its fair
        share among the users who have work (itself included)."""
        now = self.clock()
        totals = {u: r.total(now) for u, r in self.recent.items()}
        everyone = sum(totals.values())
        contenders = set(self.waiting_users()) | {user}
        weight_sum = sum(self.weight(u) for u in contenders)
        return {"recent_frames": totals.get(user, 0), "recent_total_frames": everyone,
                "recent_share": (totals.get(user, 0) / everyone) if everyone else None,
                "fair_share": self.weight(user) / weight_sum,
                "window_s": self.share_window_s}


def check_weight(weight, who: str) -> float:
    if isinstance(weight, bool) or not isinstance(weight, int | float) or not (
            0 < weight < 1e6) or not math.isfinite(weight):
        raise ValueError(f"weight of {who} must be a positive number, got {weight!r}")
    return float(weight)
