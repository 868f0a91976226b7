"""A kernel's connection to the OPU broker (a ZeroMQ DEALER socket).

One request at a time, as a notebook makes them. While a transform waits for its turn the
client sends a heartbeat every ``heartbeat_s`` (the broker says how often): a kernel that dies
stops them, and the broker drops its request. An interrupt (Kernel → Interrupt) sends a
cancel before raising. When the broker does not answer, or restarted and lost the request,
the call fails with a message saying so, and the next call starts a fresh connection.
"""

from __future__ import annotations

import itertools
import os
import secrets
import threading
import time

import numpy as np

from ..errors import OPUError
from . import protocol

CONNECT_TIMEOUT_S = 10.0  # no answer to a request at all: the broker is down or unreachable
DEAD_AFTER_S = 15.0  # no answer to heartbeats for this long while waiting: it died


class BrokerError(OPUError):
    """The broker refused or lost a request; the text says why and what to do."""


class BrokerUnavailable(BrokerError):
    """The broker does not answer."""


def new_routing_id() -> bytes:
    # ZeroMQ reserves ids starting with a zero byte for its own
    return bytes([secrets.randbelow(255) + 1]) + secrets.token_bytes(
        protocol.ROUTING_ID_BYTES - 1)


class BrokerClient:
    def __init__(self, url: str, user: str, key: bytes, *, context=None,
                 connect_timeout_s: float = CONNECT_TIMEOUT_S,
                 dead_after_s: float = DEAD_AFTER_S):
        import zmq

        self.zmq = zmq
        self.url = url
        self.user = user
        self.key = key
        self.context = context or zmq.Context.instance()
        self.connect_timeout_s = connect_timeout_s
        self.dead_after_s = dead_after_s
        self.heartbeat_s = 1.0
        self._socket = None
        self._seq = itertools.count(1)
        self._ids = itertools.count(1)
        self._pid = os.getpid()
        # one request at a time on the socket, even if notebook code calls from threads
        self._lock = threading.RLock()
        self.hello_info: dict | None = None

    @classmethod
    def from_env(cls, environ=None, **kwargs) -> BrokerClient:
        environ = os.environ if environ is None else environ
        missing = [n for n in ("OPU_BROKER_URL", "OPU_BROKER_USER", "OPU_BROKER_KEY")
                   if not environ.get(n)]
        if missing:
            raise BrokerError(f"the shared OPU needs {', '.join(missing)} in the environment "
                              "(the hub sets them with the 'Shared OPU' profile)")
        try:
            key = bytes.fromhex(environ["OPU_BROKER_KEY"])
        except ValueError:
            raise BrokerError("OPU_BROKER_KEY is not hexadecimal") from None
        return cls(environ["OPU_BROKER_URL"], environ["OPU_BROKER_USER"], key, **kwargs)

    # -- connection -----------------------------------------------------------------------
    @property
    def socket(self):
        if self._socket is not None and self._pid != os.getpid():
            self._socket = None  # a forked child must not share its parent's connection
        if self._socket is None:
            zmq = self.zmq
            if self._pid != os.getpid():
                self.context = zmq.Context()
                self._pid = os.getpid()
            sock = self.context.socket(zmq.DEALER)
            sock.setsockopt(zmq.ROUTING_ID, new_routing_id())
            sock.setsockopt(zmq.LINGER, 500)  # a cancel should leave before the socket closes
            sock.setsockopt(zmq.RECONNECT_IVL, 100)
            sock.setsockopt(zmq.RECONNECT_IVL_MAX, 2000)
            sock.connect(self.url)
            self._socket = sock
        return self._socket

    def reset(self) -> None:
        """Forget the connection: the next call connects afresh (new routing id)."""
        if self._socket is not None:
            if self._pid == os.getpid():
                self._socket.close(linger=200)
            self._socket = None

    close = reset

    def _send(self, op: str, fields: dict, payload=b"") -> str:
        request_id = fields.get("id") or f"{op}-{next(self._ids)}"
        header = {"v": protocol.VERSION, "op": op, "user": self.user, "seq": next(self._seq),
                  "ts": time.time(), **fields, "id": request_id}
        self.socket.send_multipart(protocol.encode(self.key, protocol.REQUEST, header, payload),
                                   copy=False)
        return request_id

    def _receive(self, timeout_s: float):
        """The next reply (header, payload), or None after ``timeout_s``."""
        sock = self.socket
        if not sock.poll(max(0, int(timeout_s * 1000))):
            return None
        frames = sock.recv_multipart(copy=False)
        header, raw, mac, payload = protocol.split(frames)
        if mac:
            protocol.verify(self.key, protocol.REPLY, raw, mac, payload)
        elif header.get("status") != "error":
            raise BrokerError("an unsigned reply that is not an error: is OPU_BROKER_URL the "
                              "broker?")
        return header, payload

    def _wait_for(self, request_id: str, timeout_s: float):
        """The reply to ``request_id`` (older replies are skipped); None after the timeout."""
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            reply = self._receive(left) if left > 0 else None
            if reply is None:
                return None
            header, payload = reply
            if header.get("id") in (request_id, None):
                return header, payload

    def _unavailable(self, what: str) -> BrokerUnavailable:
        self.reset()
        return BrokerUnavailable(
            f"the shared OPU's broker at {self.url} {what}. It may be restarting: run the "
            "cell again in a moment; if this persists, ask the hub's administrator.")

    def call(self, op: str, fields: dict | None = None, timeout_s: float | None = None) -> dict:
        with self._lock:
            return self._call(op, fields, timeout_s)

    def _call(self, op, fields, timeout_s) -> dict:
        request_id = self._send(op, dict(fields or {}))
        reply = self._wait_for(request_id, self.connect_timeout_s if timeout_s is None
                               else timeout_s)
        if reply is None:
            raise self._unavailable(f"did not answer within {timeout_s or self.connect_timeout_s:g} s")
        header = reply[0]
        if header.get("status") == "error":
            raise BrokerError(f"the OPU broker refused the request: {header.get('error')}")
        return header

    def hello(self) -> dict:
        info = self.call("hello")
        self.heartbeat_s = float(info.get("heartbeat_s") or 1.0)
        self.hello_info = info
        return info

    def status(self, timeout_s: float | None = None) -> dict:
        return self.call("status", timeout_s=timeout_s)

    # -- transforms -----------------------------------------------------------------------
    def transform(self, params: dict, rows: np.ndarray, on_wait=None) -> tuple[np.ndarray, dict]:
        """Project ``rows`` (2D, 0/1) with ``params`` (n_features, n_components, seed,
        ones_fraction, override, linear) on the shared device. ``on_wait(header)`` is called
        with each heartbeat's answer (queue position, progress)."""
        fields = {"rows": int(rows.shape[0]), "n_features": int(rows.shape[1]), **params}
        payload = protocol.pack_rows(rows)
        with self._lock:
            request_id = self._send("transform", fields, payload)
            try:
                return self._await_result(request_id, on_wait)
            except KeyboardInterrupt:
                # Free our place at once rather than leave the broker to notice the missing
                # heartbeats.
                try:
                    self._send("cancel", {"id": request_id})
                finally:
                    self.reset()
                raise

    def _await_result(self, request_id: str, on_wait):
        reply = self._wait_for(request_id, self.connect_timeout_s)
        if reply is None:
            raise self._unavailable(f"did not acknowledge the request within "
                                    f"{self.connect_timeout_s:g} s")
        last_heard = time.monotonic()
        next_ping = last_heard + self.heartbeat_s
        while True:
            if reply is not None:
                header, payload = reply
                status = header.get("status")
                if status == "done":
                    result = protocol.result_array(payload, header)
                    if header.get("receipt"):  # the broker may let go of it now
                        self._send("received", {"receipt": header["receipt"]})
                    return result, header
                if status == "error":
                    error = str(header.get("error"))
                    if error.startswith("unknown request"):
                        self.reset()
                        raise BrokerError("the OPU broker lost this request (it restarted, or "
                                          "stopped hearing from this kernel): run the cell "
                                          "again")
                    raise BrokerError(f"the OPU broker refused the request: {error}")
                last_heard = time.monotonic()
                if status == "alive" and on_wait is not None:
                    on_wait(header)
            now = time.monotonic()
            if now - last_heard > self.dead_after_s:
                raise self._unavailable(f"stopped answering for {self.dead_after_s:g} s")
            if now >= next_ping:
                self._send("ping", {"id": request_id})
                next_ping = now + self.heartbeat_s
            reply = self._wait_for(request_id, max(0.005, next_ping - now))
