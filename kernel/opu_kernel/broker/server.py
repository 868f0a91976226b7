"""The OPU broker: the one process that drives a device, serving many kernels in turn.

One thread, one loop, so that a small request costs two wake-ups (in and out), as a status
message does. Each pass: when the device is free, run the next slice the
:class:`~.scheduler.FairScheduler` gives (the simulated device then counts itself busy for
the timing model's duration); send the results whose device time is over; read messages —
authenticate each (:mod:`.protocol`), queue transforms, answer status, heartbeat and cancel
at once; drop requests whose kernel stopped sending heartbeats. Messages wait while a slice
computes: at most one slice (``max_slice`` frames).

A malformed, unauthenticated or oversized message is refused to its sender alone: a message
part over ``max_message_bytes`` is cut off by ZeroMQ itself, before it is buffered; at most
``RCVHWM`` messages wait per connection; parts beyond the protocol's four are read and dropped,
never kept.

A result stays in the broker's memory until its kernel has read it (ZeroMQ queues what the
other end does not read yet, per connection), so results are receipted: each carries a random
``receipt`` that the kernel sends back (op ``received``) once the whole message is in. A user
whose results sent more than ``RECEIPT_GRACE_S`` ago and not receipted reach
``max_unreceived_bytes`` is refused more until they are read, however many connections she
opens: a kernel that never reads its answers cannot fill the broker's memory. (Results still
in transit, younger than the grace, do not count: several kernels of one user fetching big
results at once are never refused.) Unreceipted results are forgotten after an hour.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import secrets
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import zmq

from . import protocol
from .device import Device
from .leases import LeaseFeed
from .scheduler import FairScheduler, Job, QuotaExceeded

log = logging.getLogger("opu_kernel.broker")

ADMIN_USER = "*admin*"
#: The timing model counts the device busy from the moment it became free when work was
#: waiting (a device queues its next frames: the broker thread's own scheduling delays do not
#: idle it), catching up at most this far behind the clock.
MAX_LAG_S = 0.25
#: Messages that may wait per connection: a kernel has at most two in flight (its request and
#: a heartbeat), so this bounds what a flooding connection makes the broker buffer.
RCVHWM = 16
MAX_PARTS = 5  # routing id + the protocol's four
#: Least time spent reading messages before the device (when due) has its turn again: with a
#: device that computes in the loop (hardware), the messages of a busy workshop still get in.
READ_BUDGET_S = 0.005
#: A result sent this recently is in transit, not yet unread (see max_unreceived_bytes).
RECEIPT_GRACE_S = 2.0
#: A connection silent this long is forgotten, and so are results unread this long.
SESSION_IDLE_S = 3600.0
#: Connections a user's kernels may hold at once; a new one beyond makes the broker forget
#: her longest silent one (its next message starts afresh).
MAX_SESSIONS_PER_USER = 64
#: How much longer than its frames' time a simulated slice may run uncharged (see _run).
CHARGE_SLACK_S = 0.05
ADMIN_OPS = ("stats", "reserve", "release")
#: Keys of users who signed a message, kept so as not to derive them per message; beyond this
#: many the cache starts afresh (derived again on use).
MAX_CACHED_KEYS = 100_000


def admin_key(secret: bytes) -> bytes:
    """The key of the broker's administrator (the hub): derived apart from every user key, so
    no user name, whatever it is, yields it."""
    return hmac.new(secret, b"opu-broker/admin-key/v1", hashlib.sha256).digest()


@dataclass
class Limits:
    max_rows: int = 10_000
    max_n_features: int = 1140 * 912
    max_n_components: int = 1920 * 1080
    max_result_bytes: int = 64 * 2**20
    max_message_bytes: int = 8 * 2**20
    max_jobs_per_user: int = 8
    #: results of one user sent but not yet receipted by their kernels (at least one goes)
    max_unreceived_bytes: int = 128 * 2**20

    def public(self) -> dict:
        return {"max_rows": self.max_rows, "max_n_features": self.max_n_features,
                "max_n_components": self.max_n_components,
                "max_result_bytes": self.max_result_bytes,
                "max_message_bytes": self.max_message_bytes}


@dataclass
class Session:
    """One kernel connection: bound to the user of its first authenticated message."""

    user: str
    seq: int = 0
    seen: float = 0.0


@dataclass(eq=False)
class Request:
    """A transform's broker-side state (``Job.data``)."""

    routing_id: bytes
    params: dict
    packed: bytes
    seen: float  # last heard from its kernel
    queued: float = 0.0
    result: np.ndarray | None = None
    done_frames: int = 0
    saturated: float = 0.0
    exposure_us: float | None = None
    frametime_us: float | None = None
    started: float | None = None
    error: str | None = None
    device_s: float = 0.0  # device time (the timing model's, or measured on hardware)
    run_s: float = 0.0  # time the broker spent running its slices
    done_at: float = 0.0
    extra: dict = field(default_factory=dict)


class Broker:
    def __init__(self, device: Device, secret: bytes, bind: str = "tcp://127.0.0.1:5599",
                 scheduler: FairScheduler | None = None, limits: Limits | None = None,
                 heartbeat_s: float = 1.0, client_timeout_s: float = 10.0,
                 context: zmq.Context | None = None, lease_feed: LeaseFeed | None = None):
        if len(secret) < 16:
            raise ValueError("the broker secret must be at least 16 bytes")
        self.device = device
        self.secret = secret
        self.bind = bind
        self.scheduler = scheduler or FairScheduler()
        self.limits = limits or Limits()
        self.heartbeat_s = float(heartbeat_s)
        self.client_timeout_s = float(client_timeout_s)
        self.context = context or zmq.Context.instance()
        self.lease_feed = lease_feed
        self.sessions: dict[bytes, Session] = {}
        self.user_sessions: dict[str, set[bytes]] = {}  # user -> routing ids of her sessions
        self.jobs: dict[tuple[bytes, str], Job] = {}
        self.pending: list[Job] = []  # computed, replied to when their device time is over
        self.acks: list[tuple[Job, dict]] = []  # "queued" answers not sent yet
        #: user -> receipt -> (routing id, bytes, when sent) of results not yet received
        self.unreceived: dict[str, dict[str, tuple[bytes, int, float]]] = {}
        self.free_at = 0.0  # when the (modeled) device is free again
        self.keys: dict[str, bytes] = {ADMIN_USER: admin_key(secret)}
        self.stopping = threading.Event()
        self.ready = threading.Event()
        self.started = time.monotonic()
        self.device_busy_s = 0.0  # modeled (or measured) time the device spent on frames
        self.frames_served = 0
        self.requests_done = 0
        self.requests_refused = 0
        self.requests_dropped = 0
        self.endpoint: str | None = None

    # -- keys ---------------------------------------------------------------------------
    def key(self, user: str) -> bytes:
        """``user``'s key: cached for users who signed a message, derived for anyone else (a
        flood of made-up names must neither grow the cache nor evict the real users)."""
        key = self.keys.get(user)
        return key if key is not None else protocol.user_key(self.secret, user)

    def _remember(self, user: str, key: bytes) -> None:
        if user not in self.keys:
            if len(self.keys) > MAX_CACHED_KEYS:
                self.keys = {ADMIN_USER: self.keys[ADMIN_USER]}
            self.keys[user] = key

    # -- running ------------------------------------------------------------------------
    def serve_forever(self) -> None:
        """Open the device, bind, serve until :meth:`stop`; closes everything on the way out."""
        self.device.open()
        sock = self.context.socket(zmq.ROUTER)
        sock.setsockopt(zmq.ROUTER_MANDATORY, 1)  # a send to a gone kernel raises: drop it
        sock.setsockopt(zmq.MAXMSGSIZE, self.limits.max_message_bytes)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SNDHWM, 1000)
        sock.setsockopt(zmq.RCVHWM, RCVHWM)
        if self.lease_feed is not None:
            self.lease_feed.start()
        try:
            sock.bind(self.bind)
            self.endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)
            log.info("OPU broker serving %s on %s", self.device.describe(), self.endpoint)
            self.ready.set()
            self._loop(sock)
        finally:
            self.stopping.set()
            if self.lease_feed is not None:
                self.lease_feed.stop()
            sock.close(linger=0)
            self.device.close()
            self.ready.set()

    def stop(self) -> None:
        """Ask the loop to end (from a signal handler or another thread)."""
        self.stopping.set()

    def _loop(self, sock) -> None:
        next_sweep = time.monotonic()
        while not self.stopping.is_set():
            now = time.monotonic()
            self._follow_leases()
            idle = False
            if now >= self.free_at:
                piece = self.scheduler.next_slice()
                if piece is None:
                    idle = True
                else:
                    self._run(sock, piece)
            now = time.monotonic()
            if self.pending:
                due = [j for j in self.pending if j.data.done_at <= now]
                if due:
                    self.pending = [j for j in self.pending if j.data.done_at > now]
                    for job in due:
                        self._reply_result(sock, job)
            # A request served at once needs no "queued" answer: one message fewer to wake for.
            for job, header in self.acks:
                if job.key in self.jobs:
                    self._send(sock, job.data.routing_id, self.key(job.user), header)
            self.acks.clear()
            # Sleep in poll until a message comes or the device (or a result) is due; a free
            # device with nothing it may run (idle, or reserved) looks again every 50 ms.
            wake = [self.free_at] if not idle else [now + 0.05]
            wake += [j.data.done_at for j in self.pending]
            timeout_ms = max(0, min(100, int(1000 * (min(wake) - now)) + 1)) if wake else 100
            if sock.poll(timeout_ms):
                # Then the device's turn again, once it is due (or a result is): costly
                # messages (a MAC over megabytes each, from a flood) delay it by one message
                # at most, not by a hundred.
                due = min([self.free_at] + [j.data.done_at for j in self.pending])
                until = max(due, time.monotonic() + READ_BUDGET_S)
                for _ in range(100):
                    frames = receive(sock)
                    if frames is None:
                        break
                    self._handle(sock, frames)
                    if time.monotonic() >= until:
                        break
            if now >= next_sweep:
                self._sweep(now)
                next_sweep = now + min(1.0, self.client_timeout_s / 4)

    def _follow_leases(self) -> None:
        """Take the lease service's latest reservations (Unix times) onto the scheduler's
        clock."""
        windows = self.lease_feed.take() if self.lease_feed is not None else None
        if windows is None:
            return
        offset = self.scheduler.clock() - time.time()
        before = {r.user for r in self.scheduler.reservations}
        self.scheduler.replace_reservations(
            [(user, start + offset, end + offset) for user, start, end in windows])
        after = {r.user for r in self.scheduler.reservations}
        for user in after - before:
            log.info("OPU broker: reserved for %s (exclusive lease)", user)
        for user in before - after:
            log.info("OPU broker: %s's reservation ended", user)

    # -- requests -----------------------------------------------------------------------
    def _handle(self, sock, frames) -> None:
        routing_id = bytes(frames[0].buffer)
        try:
            header, raw, mac, payload = protocol.split(frames[1:])
            op, user, seq = protocol.check_envelope(header)
            key = self.key(user)
            protocol.verify(key, protocol.REQUEST, raw, mac, payload)
        except protocol.ProtocolError as exc:
            self.requests_refused += 1
            self._refuse(sock, routing_id, None, str(exc), None)
            return
        except Exception:  # noqa: BLE001 - a message must never stop the broker for everyone
            # unsigned, so at debug level: a flood of them must not fill the log
            log.debug("OPU broker: a message could not be read", exc_info=True)
            self.requests_refused += 1
            self._refuse(sock, routing_id, None, "malformed message", None)
            return
        self._remember(user, key)
        request_id = header.get("id")
        if not isinstance(request_id, str) or len(request_id) > protocol.MAX_ID_CHARS:
            request_id = None
        if len(routing_id) != protocol.ROUTING_ID_BYTES:
            self._refuse(sock, routing_id, key, "connect with a random "
                         f"{protocol.ROUTING_ID_BYTES}-byte routing id (update opu_kernel)",
                         request_id)
            return
        now = time.monotonic()
        session = self.sessions.get(routing_id)
        if session is None:
            session = self._new_session(routing_id, user)
        if session.user != user:
            self._refuse(sock, routing_id, None, "this connection belongs to another user",
                         request_id)
            return
        if seq <= session.seq:
            self._refuse(sock, routing_id, key, "replayed or reordered message (sequence "
                         "number not increasing)", request_id)
            return
        session.seq = seq
        session.seen = now
        if op in ADMIN_OPS and user != ADMIN_USER:
            self._refuse(sock, routing_id, key, f"{op} is for the hub only", request_id)
            return
        try:
            reply = getattr(self, f"_op_{op}")(routing_id, user, header, payload, now)
        except (protocol.ProtocolError, QuotaExceeded, ValueError) as exc:
            self.requests_refused += 1
            self._refuse(sock, routing_id, key, str(exc), request_id)
            return
        except Exception:  # noqa: BLE001 - a message must never stop the broker for everyone
            log.exception("OPU broker: a message from %s could not be handled", user)
            self.requests_refused += 1
            self._refuse(sock, routing_id, key, "the broker could not handle this message",
                         request_id)
            return
        if reply is None:  # a receipt: nothing to answer
            return
        reply.setdefault("status", "ok")
        reply.update(v=protocol.VERSION, op=op, id=request_id)
        job = reply.pop("job", None)
        if job is not None:
            self.acks.append((job, reply))
        else:
            self._send(sock, routing_id, key, reply)

    def _new_session(self, routing_id: bytes, user: str) -> Session:
        """A connection's session; beyond MAX_SESSIONS_PER_USER, the user's longest silent
        one is forgotten (a loop of new connections must not grow the broker's memory)."""
        mine = self.user_sessions.setdefault(user, set())
        if len(mine) >= MAX_SESSIONS_PER_USER:
            oldest = min(mine, key=lambda r: self.sessions[r].seen)
            mine.discard(oldest)
            del self.sessions[oldest]
        mine.add(routing_id)
        session = self.sessions[routing_id] = Session(user)
        return session

    def _op_hello(self, routing_id, user, header, payload, now) -> dict:
        return {"user": user, "limits": self.limits.public(), "heartbeat_s": self.heartbeat_s,
                "input_shape": list(self.device.input_shape),
                "output_shape_max": list(self.device.output_shape_max),
                **self.device.describe()}

    def _op_status(self, routing_id, user, header, payload, now) -> dict:
        sched = self.scheduler
        info = {"queue_requests": sched.queued_jobs(), "queue_frames": sched.queued_frames(),
                "users_waiting": len(sched.waiting_users()), "position": sched.position(user),
                "weight": sched.weight(user), **sched.share(user), **(sched.quota(user) or {})}
        reservation = sched.reservation_at(sched.clock())
        if reservation is not None:
            info["reserved_for"] = reservation.user
            info["reserved_until"] = (None if math.isinf(reservation.end) else
                                      time.time() + reservation.end - sched.clock())
        info["utilisation"] = self.utilisation()
        info.update(self.device.describe())
        return info

    def _op_transform(self, routing_id, user, header, payload, now) -> dict:
        params = protocol.check_transform(header, self.limits.public())
        if len(payload) != protocol.packed_size(params["rows"], params["n_features"]):
            protocol.unpack_rows(payload, params["rows"], params["n_features"])  # raises
        self.device.check(params)
        self._check_unreceived(user, params, now)
        key = (routing_id, params["id"])
        if key in self.jobs:
            raise protocol.ProtocolError(f"request id {params['id']!r} is already in use")
        mine = sum(1 for j in self.jobs.values() if j.user == user)
        if mine >= self.limits.max_jobs_per_user:
            raise protocol.ProtocolError(
                f"{user} already has {mine} requests in flight (at most "
                f"{self.limits.max_jobs_per_user})")
        request = Request(routing_id, params, bytes(payload), now, now)
        job = Job(key, user, params["rows"], data=request)
        self.scheduler.submit(job)
        self.jobs[key] = job
        position = self.scheduler.position(user)
        return {"status": "queued", "position": position, "heartbeat_s": self.heartbeat_s,
                "job": job}

    def _check_unreceived(self, user: str, params: dict, now: float) -> None:
        waiting = sum(size for _, size, sent in self.unreceived.get(user, {}).values()
                      if now - sent > RECEIPT_GRACE_S)
        size = protocol.result_bytes(params)
        if waiting and waiting + size > self.limits.max_unreceived_bytes:
            raise protocol.ProtocolError(
                f"{user}'s kernels have not read {waiting} bytes of results sent to them "
                f"(at most {self.limits.max_unreceived_bytes} may wait): a kernel that does "
                "not read its answers holds them; restart it")

    def _op_received(self, routing_id, user, header, payload, now) -> None:
        receipt = header.get("receipt")
        mine = self.unreceived.get(user, {})
        if isinstance(receipt, str) and mine.get(receipt, (None,))[0] == routing_id:
            del mine[receipt]
            if not mine:
                del self.unreceived[user]
        return None

    def _job_of(self, routing_id, header) -> Job | None:
        request_id = header.get("id")
        return self.jobs.get((routing_id, request_id)) if isinstance(request_id, str) else None

    def _op_ping(self, routing_id, user, header, payload, now) -> dict:
        job = self._job_of(routing_id, header)
        if job is None:
            raise protocol.ProtocolError("unknown request: the broker does not have it (it "
                                         "restarted, or dropped it after missed heartbeats)")
        job.data.seen = now
        position = self.scheduler.position(user)
        return {"status": "alive", "position": position,
                "done_frames": job.data.done_frames, "frames": job.frames}

    def _op_cancel(self, routing_id, user, header, payload, now) -> dict:
        job = self._job_of(routing_id, header)
        if job is not None:
            self._drop(job)
        return {"status": "cancelled", "found": job is not None}

    def _op_stats(self, routing_id, user, header, payload, now) -> dict:
        served = dict(self.scheduler.served)
        waiting = self.scheduler.waiting_users()
        return {"served_frames": served, "users_waiting": waiting,
                "frames_served": self.frames_served, "device_busy_s": self.device_busy_s,
                "uptime_s": time.monotonic() - self.started, "utilisation": self.utilisation(),
                "requests_done": self.requests_done, "requests_refused": self.requests_refused,
                "requests_dropped": self.requests_dropped, "jobs": len(self.jobs)}

    def _op_reserve(self, routing_id, user, header, payload, now) -> dict:
        self._reservations_are_mine()
        holder = protocol.field_str(header, "holder", protocol.MAX_USER_CHARS)
        start = protocol.field_float(header, "start", 0, 1e11)
        end = protocol.field_float(header, "end", 0, 1e11)
        offset = self.scheduler.clock() - time.time()
        self.scheduler.reserve(holder, start + offset, end + offset)
        return {"holder": holder}

    def _op_release(self, routing_id, user, header, payload, now) -> dict:
        self._reservations_are_mine()
        holder = protocol.field_str(header, "holder", protocol.MAX_USER_CHARS)
        self.scheduler.release(holder)
        return {"holder": holder}

    def _reservations_are_mine(self) -> None:
        if self.lease_feed is not None:
            raise ValueError("this broker's reservations follow the hub's leases "
                             f"({self.lease_feed.url}): lease the device there")

    def utilisation(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.device_busy_s / elapsed if elapsed > 0 else 0.0

    # -- replies ------------------------------------------------------------------------
    def _send(self, sock, routing_id, key, header, payload=b"") -> bool:
        try:
            sock.send_multipart([routing_id, *protocol.encode(key, protocol.REPLY, header,
                                                              payload)],
                                zmq.NOBLOCK, copy=False)
            return True
        except zmq.ZMQError as exc:  # the kernel went away (or stopped reading)
            log.info("OPU broker: reply to a gone connection dropped (%s)", exc)
            return False

    def _refuse(self, sock, routing_id, key, reason, request_id) -> None:
        # an authenticated user's refusal is worth a line; anonymous noise only at debug level
        log.log(logging.INFO if key is not None else logging.DEBUG,
                "OPU broker refused a message: %s", reason)
        self._send(sock, routing_id, key, {"v": protocol.VERSION, "status": "error",
                                           "error": reason, "id": request_id})

    def _reply_result(self, sock, job: Job) -> None:
        request: Request = job.data
        if self.jobs.pop(job.key, None) is None or job.cancelled and request.error is None:
            return  # cancelled or dropped meanwhile
        key = self.key(job.user)
        header = {"v": protocol.VERSION, "op": "transform", "id": request.params["id"]}
        if request.error is not None:
            header.update(status="error", error=request.error)
            self._send(sock, request.routing_id, key, header)
            return
        result = request.result
        header.update(status="done", shape=list(result.shape), dtype=result.dtype.name,
                      exposure_us=request.exposure_us, frametime_us=request.frametime_us,
                      saturated=request.saturated / max(1, result.size) if
                      request.exposure_us is not None else None,
                      wait_s=round(request.started - request.queued, 6) if request.started else 0,
                      device_s=round(request.device_s, 6), run_s=round(request.run_s, 6),
                      receipt=secrets.token_hex(16))
        if self._send(sock, request.routing_id, key, header, result.data):
            self.requests_done += 1
            self.unreceived.setdefault(job.user, {})[header["receipt"]] = (
                request.routing_id, result.nbytes, time.monotonic())

    def _drop(self, job: Job) -> None:
        self.scheduler.cancel(job)
        self.jobs.pop(job.key, None)

    def _sweep(self, now: float) -> None:
        """Drop requests whose kernel stopped sending heartbeats (it died, or was cut off),
        and forget idle connections."""
        for job in [j for j in self.jobs.values()
                    if now - j.data.seen > self.client_timeout_s]:
            log.info("OPU broker: dropping %s's request: no heartbeat for %.0f s", job.user,
                     now - job.data.seen)
            self.requests_dropped += 1
            self._drop(job)
        for routing_id in [r for r, s in self.sessions.items() if now - s.seen > SESSION_IDLE_S]:
            session = self.sessions.pop(routing_id)
            mine = self.user_sessions.get(session.user, set())
            mine.discard(routing_id)
            if not mine:
                self.user_sessions.pop(session.user, None)
        for user, waiting in list(self.unreceived.items()):
            for receipt in [r for r, (_, _, sent) in waiting.items()
                            if now - sent > SESSION_IDLE_S]:
                del waiting[receipt]
            if not waiting:
                del self.unreceived[user]

    # -- the device ------------------------------------------------------------------------
    def _run(self, sock, piece) -> None:
        """Run one slice on the device; a finished request waits in ``pending`` until its
        device time is over."""
        job, request = piece.job, piece.job.data
        started = time.monotonic()
        if request.started is None:
            request.started = started
        width = (request.params["n_features"] + 7) // 8
        try:
            rows = protocol.unpack_rows(request.packed[piece.start * width:piece.stop * width],
                                        piece.frames, request.params["n_features"])
            acquisition = self.device.run(request.params, rows)
            output = acquisition.output
            if request.result is None:
                request.result = np.empty((job.frames, output.shape[1]), output.dtype)
            request.result[piece.start:piece.stop] = output
            if acquisition.saturated is not None:
                request.saturated += acquisition.saturated * output.size
            request.exposure_us = acquisition.exposure_us
            request.frametime_us = acquisition.frametime_us
        except Exception as exc:  # noqa: BLE001 - one bad request must not stop the device
            log.warning("OPU broker: %s's request failed: %s", job.user, exc)
            request.error = f"the device failed this request: {type(exc).__name__}: {exc}"
            self.scheduler.cancel(job)
            self._reply_result(sock, job)
            return
        now = time.monotonic()
        request.run_s += now - started
        if self.device.frame_s is not None:
            # The timing model: the device is busy frames × frame_s from when it was free
            # (or from when this request came, if the device was idle then).
            start = max(self.free_at, min(started, request.queued), started - MAX_LAG_S)
            busy = piece.frames * self.device.frame_s
            self.free_at = start + busy
            # A slice that took far longer than its frames (the simulator drawing a new
            # matrix of a GiB: seconds for two rows, every request with a new seed) held the
            # device for everyone that long: its user pays the difference in frames.
            overrun = now - started - busy - CHARGE_SLACK_S
            if overrun > 0 and self.device.frame_s > 0:
                self.scheduler.charge(job.user, int(overrun / self.device.frame_s))
        else:
            busy = now - started
            self.free_at = now
        self.device_busy_s += busy
        self.frames_served += piece.frames
        request.device_s += busy
        request.done_frames += piece.frames
        if request.done_frames >= job.frames:
            request.done_at = self.free_at
            self.pending.append(job)


def receive(sock):
    """The next message's parts (at most ``MAX_PARTS`` kept; the rest read and dropped, so that
    a message of a million parts costs nothing), or None when none waits."""
    try:
        parts = [sock.recv(zmq.NOBLOCK, copy=False)]
    except zmq.Again:
        return None
    more = parts[0].more
    while more:  # the rest of a message is already here: ZeroMQ delivers messages whole
        part = sock.recv(copy=False)
        more = part.more
        if len(parts) <= MAX_PARTS:  # one part too many is kept: the check refuses it
            parts.append(part)
    return parts
