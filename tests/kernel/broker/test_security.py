"""Attacks on the shared OPU's broker: submitting as someone else, reading someone else's
results, replaying, malformed and huge messages. Each is refused, and an honest user's
transform in the middle of it all still comes back right."""

import json
import socket
import threading
import time

import numpy as np
import pytest
import zmq

from opu_kernel.backends import make_backend
from opu_kernel.broker import protocol, server
from opu_kernel.broker.client import BrokerClient, BrokerError, new_routing_id
from opu_kernel.broker.device import SimulatedDevice
from opu_kernel.broker.leases import LeaseFeed
from opu_kernel.broker.scheduler import FairScheduler
from opu_kernel.broker.server import ADMIN_USER, Limits

from .conftest import broker_in_thread
from .test_faults import wait_until

PARAMS = {"n_components": 64, "seed": 0, "ones_fraction": 0.5, "override": {}}


def rows(n=8, features=32, seed=0):
    return (np.random.default_rng(seed).random((n, features)) < 0.5).astype(np.uint8)


class RawPeer:
    """A hand-made connection: sends whatever frames it is told to."""

    def __init__(self, url, routing_id=None):
        self.socket = zmq.Context.instance().socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        if routing_id is not False:
            self.socket.setsockopt(zmq.ROUTING_ID, routing_id or new_routing_id())
        self.socket.connect(url)
        self.seq = 0

    def signed(self, user, key, op="transform", payload=b"", **fields):
        self.seq += 1
        header = {"v": 1, "op": op, "user": user, "seq": self.seq, "ts": time.time(),
                  "id": "r1", **fields}
        return protocol.encode(key, protocol.REQUEST, header, payload)

    def send(self, frames):
        self.socket.send_multipart(frames)

    def receive(self, timeout_s=5.0):
        if not self.socket.poll(int(timeout_s * 1000)):
            return None
        header, _, mac, payload = protocol.split(self.socket.recv_multipart())
        return header, mac, payload

    def close(self):
        self.socket.close(linger=0)


@pytest.fixture
def peers(broker):
    made = []

    def make(routing_id=None):
        peer = RawPeer(broker.url, routing_id)
        made.append(peer)
        return peer

    yield make
    for peer in made:
        peer.close()


def transform_fields(n=8, features=32):
    return {"rows": n, "n_features": features, **PARAMS}


def test_a_key_signs_for_its_own_user_only(broker):
    mallory = BrokerClient(broker.url, "alice", protocol.user_key(broker.secret, "mallory"))
    with pytest.raises(BrokerError, match="authentication failed"):
        mallory.transform(PARAMS, rows())
    guess = BrokerClient(broker.url, "alice", b"\x00" * 32)
    with pytest.raises(BrokerError, match="authentication failed"):
        guess.hello()
    for client in (mallory, guess):
        client.close()
    assert broker.admin()["requests_done"] == 0


def test_admin_operations_are_for_the_hub_only(broker):
    alice = broker.client("alice")
    with pytest.raises(BrokerError, match="for the hub only"):
        alice.call("stats")
    # a user who happens to be called like the administrator gets a user key, not its key
    impostor = broker.client(ADMIN_USER)
    with pytest.raises(BrokerError, match="authentication failed"):
        impostor.call("reserve", {"holder": "mallory", "start": 0, "end": 1e10})
    assert broker.admin()["requests_done"] == 0


def test_results_go_only_to_the_connection_that_asked(secret):
    with broker_in_thread(secret) as b:
        b.admin("reserve", holder="nobody", start=time.time(), end=time.time() + 60)
        alice = RawPeer(b.url)
        alice_key = protocol.user_key(secret, "alice")
        alice.send(alice.signed("alice", alice_key, payload=protocol.pack_rows(rows()),
                                **transform_fields()))
        assert alice.receive()[0]["status"] == "queued"
        # Bob, with his own key, asks about, cancels, and re-uses the id of alice's request:
        # ids are per connection, so he reaches nothing of hers.
        bob = b.client("bob")
        with pytest.raises(BrokerError, match="unknown request"):
            bob.call("ping", {"id": "r1"})
        assert bob.call("cancel", {"id": "r1"})["found"] is False
        # Mallory takes alice's routing id while alice is connected: ZeroMQ keeps alice's
        # connection and ignores the newcomer, who hears nothing.
        mallory = RawPeer(b.url, alice.socket.getsockopt(zmq.ROUTING_ID))
        mallory_key = protocol.user_key(secret, "mallory")
        mallory.send(mallory.signed("mallory", mallory_key, op="hello"))
        b.admin("release", holder="nobody")
        header, mac, payload = alice.receive()
        assert header["status"] == "done" and header["id"] == "r1"
        protocol.verify(alice_key, protocol.REPLY, protocol.encode(
            alice_key, protocol.REPLY, header, payload)[1], mac, payload)
        assert mallory.receive(timeout_s=0.5) is None
        assert b.admin()["jobs"] == 0
        for peer in (alice, mallory):
            peer.close()
        bob.close()


def test_a_guessable_routing_id_is_refused(peers, broker):
    peer = peers(routing_id=False)  # ZeroMQ's own ids: a 5-byte counter
    peer.send(peer.signed("alice", protocol.user_key(broker.secret, "alice"), op="hello"))
    header, _, _ = peer.receive()
    assert header["status"] == "error" and "16-byte routing id" in header["error"]


def test_a_connection_stays_with_its_first_user(peers, broker):
    peer = peers()
    peer.send(peer.signed("alice", protocol.user_key(broker.secret, "alice"), op="hello"))
    assert peer.receive()[0]["status"] == "ok"
    peer.send(peer.signed("bob", protocol.user_key(broker.secret, "bob"), op="hello"))
    header, mac, _ = peer.receive()
    assert header["status"] == "error" and "belongs to another user" in header["error"]
    assert mac == b""  # refusals carry nothing signed


def test_a_replayed_message_is_refused(peers, broker):
    peer = peers()
    frames = peer.signed("alice", protocol.user_key(broker.secret, "alice"), op="status")
    peer.send(frames)
    assert peer.receive()[0]["status"] == "ok"
    peer.send(frames)
    header = peer.receive()[0]
    assert header["status"] == "error" and "replayed" in header["error"]


def test_malformed_and_huge_messages_are_refused_without_disturbing_others(secret):
    with broker_in_thread(secret, limits=Limits(max_message_bytes=2**20)) as b:
        honest = b.client("alice")
        X = rows(200, 300, seed=4)
        outcome = {}

        def work():
            try:
                outcome["results"] = [honest.transform(PARAMS, X)[0] for _ in range(20)]
            except Exception as exc:  # noqa: BLE001 - reported below
                outcome["error"] = exc

        worker = threading.Thread(target=work)
        worker.start()
        key = protocol.user_key(secret, "mallory")
        attacks = [
            [b"OPUB1"],
            [b"GET / HTTP/1.1\r\n", b"", b"", b""],
            [protocol.MAGIC, b"{not json", b"", b""],
            [protocol.MAGIC, b"{}" + b" " * 10_000, b"", b""],
            [protocol.MAGIC, b"{}", b"", b""] + [b"x"] * 100_000,  # parts beyond four
        ]
        refused = 0
        for frames in attacks:
            peer = RawPeer(b.url)
            peer.send(frames)
            header = peer.receive()[0]
            assert header["status"] == "error"
            refused += 1
            peer.close()
        peer = RawPeer(b.url)
        bad_payloads = [
            dict(payload=b"\x00" * 5, **transform_fields()),  # wrong packed size
            dict(payload=b"", **{**transform_fields(), "rows": 10**9}),  # too many rows
            dict(payload=b"", **{**transform_fields(), "n_components": -1}),
            dict(payload=b"", **{**transform_fields(), "override": {"rm -rf": 1}}),
        ]
        for fields in bad_payloads:
            peer.send(peer.signed("mallory", key, **fields))
            header = peer.receive()[0]
            assert header["status"] == "error", header
        for op in ("ping", "cancel", "status", "hello"):  # odd types where strings belong
            peer.send(peer.signed("mallory", key, op=op, **{"id": ["r1"], "holder": {}}))
            assert peer.receive()[0]["status"] in ("error", "ok", "cancelled")
        # Over max_message_bytes: ZeroMQ cuts that connection before buffering the message.
        huge = RawPeer(b.url)
        huge.send(huge.signed("mallory", key, payload=b"\x01" * (4 * 2**20),
                              **transform_fields()))
        assert huge.receive(timeout_s=1.0) is None
        for p in (peer, huge):
            p.close()
        worker.join(60)
        assert "error" not in outcome, outcome.get("error")
        reference = make_backend("simulator", seed=0)
        reference.open()
        reference.configure(300, 64, 0.5)
        expected = reference.transform(X, linear=False).output
        assert all(np.array_equal(r, expected) for r in outcome["results"])
        stats = b.admin()
        assert stats["requests_done"] == 20
        assert stats["requests_refused"] >= refused + len(bad_payloads)
        honest.close()


class HeldDevice(SimulatedDevice):
    """The simulated device (20 ms a frame), whose first run waits until ``go`` is set: the
    broker is busy meanwhile, so that messages sent then reach it in one batch."""

    def __init__(self):
        super().__init__(frame_s=0.02)
        self.running, self.go = threading.Event(), threading.Event()

    def run(self, params, rows):
        if not self.go.is_set():
            self.running.set()
            self.go.wait(10)
        return super().run(params, rows)


def test_a_flood_of_names_neither_grows_the_key_cache_nor_stops_the_broker(
        secret, monkeypatch):
    monkeypatch.setattr(server, "MAX_CACHED_KEYS", 3)
    device = HeldDevice()
    with broker_in_thread(secret, device=device) as b:
        alice = RawPeer(b.url)
        alice_key = protocol.user_key(secret, "alice")
        # Alice's first request holds the device; her second waits, its "queued" answer due
        # after the batch in which users who sign messages overflow the cache (which once
        # emptied it under the answer still to send: KeyError, the broker stopped).
        alice.send(alice.signed("alice", alice_key, payload=protocol.pack_rows(rows()),
                                **transform_fields()))
        assert device.running.wait(10)
        alice.send(alice.signed("alice", alice_key, payload=protocol.pack_rows(rows()),
                                **{**transform_fields(), "id": "r2"}))
        others = [RawPeer(b.url) for _ in range(5)]
        for i, peer in enumerate(others):
            peer.send(peer.signed(f"user{i}", protocol.user_key(secret, f"user{i}"),
                                  op="hello"))
        time.sleep(0.2)  # let them all arrive while the device holds the broker
        device.go.set()
        done = set()
        while done != {"r1", "r2"}:
            answer = alice.receive()
            assert answer is not None, "the broker stopped answering"
            assert answer[0]["status"] in ("done", "queued"), answer[0]
            if answer[0]["status"] == "done":
                done.add(answer[0]["id"])
        assert all(peer.receive()[0]["status"] == "ok" for peer in others)
        # an unsigned flood of made-up names: nothing of it is kept
        cached = set(b.broker.keys)
        junk = RawPeer(b.url)
        for i in range(200):
            junk.send(junk.signed(f"nobody{i}", b"k" * 32, op="hello"))
            assert junk.receive()[0]["status"] == "error"
        assert set(b.broker.keys) == cached
        assert not b.broker.stopping.is_set()
        for peer in (alice, junk, *others):
            peer.close()


def test_costly_messages_do_not_keep_the_device_from_its_turn(secret, monkeypatch):
    """Each message in a flood costs the broker a MAC over megabytes (here: 20 ms each): the
    device runs its next slice after at most one of them, not after a batch of a hundred."""
    with broker_in_thread(secret, device=SimulatedDevice(frame_s=3e-4)) as b:
        events = []
        handle, run = b.broker._handle, b.broker._run

        def slow_handle(sock, frames):
            events.append("message")
            time.sleep(0.02)
            handle(sock, frames)

        def counted_run(sock, piece):
            events.append(piece.job.user)
            run(sock, piece)

        monkeypatch.setattr(b.broker, "_handle", slow_handle)
        monkeypatch.setattr(b.broker, "_run", counted_run)
        alice = b.client("alice")
        worker = threading.Thread(  # 30 slices of a quantum (32 frames, ~10 ms each)
            target=alice.transform, args=(PARAMS, rows(960, 32)))
        worker.start()
        wait_until(lambda: "alice" in events, what="alice's first slice")
        flood = RawPeer(b.url)
        for _ in range(30):
            flood.send(flood.signed("mallory", b"k" * 32, op="ping"))
        worker.join(30)
        first, last = events.index("alice"), len(events) - events[::-1].index("alice")
        between = "".join("m" if e == "message" else "d" for e in events[first:last])
        assert between.count("m") >= 10, between  # the flood came while alice's job ran
        assert max(len(run) for run in between.split("d")) <= 2, between
        alice.close()
        flood.close()


def odd_http_server(answer: bytes):
    """A stand-in for the lease service that answers every request with ``answer``."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                conn.sendall(answer)

    threading.Thread(target=serve, daemon=True).start()
    return listener, f"http://127.0.0.1:{listener.getsockname()[1]}/api/leases"


@pytest.mark.parametrize("answer", [
    b"garbage\r\n\r\n",  # no status line
    b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n{\"leases\": [",  # cut short
    b"HTTP/1.1 200 OK\r\n\r\n" + b"[" * 200_000,  # nested past the recursion limit
], ids=["status-line", "cut-short", "deep-json"])
def test_a_garbled_lease_answer_is_a_failed_poll_not_the_end_of_polling(answer):
    listener, url = odd_http_server(answer)
    try:
        feed = LeaseFeed(url, "token", "simulated")
        assert feed.poll_once() is False and feed.failures == 1
        assert feed.poll_once() is False and feed.failures == 2
    finally:
        listener.close()


def test_a_lease_answer_that_trickles_in_is_a_failed_poll_within_its_deadline():
    """An answer sent a byte at a time (each read well within the socket timeout) must not
    hold the feed: the whole answer has one deadline."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve():
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
            while not stop.is_set():
                conn.sendall(b" ")
                time.sleep(0.05)

    threading.Thread(target=serve, daemon=True).start()
    feed = LeaseFeed(f"http://127.0.0.1:{listener.getsockname()[1]}/api/leases", "token",
                     "simulated", timeout_s=0.5)
    started = time.monotonic()
    try:
        assert feed.poll_once() is False and feed.failures == 1
        assert time.monotonic() - started < 5  # not 100,000 × 50 ms
    finally:
        stop.set()
        listener.close()


def test_the_quota_is_the_users_whatever_the_connections(secret):
    """Three connections (three kernels) of one user share her frame quota; another user's
    is untouched."""
    with broker_in_thread(secret, scheduler=FairScheduler(quota_frames=100)) as b:
        kernels = [b.client("mallory") for _ in range(3)]
        for kernel in kernels[:2]:
            kernel.transform(PARAMS, rows(40))
        with pytest.raises(BrokerError, match="80 of 100 frames"):
            kernels[2].transform(PARAMS, rows(40))
        alice = b.client("alice")
        alice.transform(PARAMS, rows(40))
        for client in (*kernels, alice):
            client.close()


def test_a_kernel_that_never_reads_its_results_cannot_fill_the_brokers_memory(
        secret, monkeypatch):
    """ZeroMQ keeps what a connection does not read in the broker's memory: once a user's
    results sent and not receipted reach max_unreceived_bytes, more are refused, on any new
    connection too (eight connections that never read once kept 87 results of 8 MiB, and
    growing). An honest kernel receipts each result and is never held back."""
    monkeypatch.setattr(server, "RECEIPT_GRACE_S", 0.0)  # count each result at once
    with broker_in_thread(secret, limits=Limits(max_unreceived_bytes=3 * 2**20)) as b:
        key = protocol.user_key(secret, "mallory")
        fields = {**transform_fields(16, 8), "n_components": 2**16}  # 1 MiB results
        deaf = []
        for i in range(6):
            if i % 2 == 0:  # a fresh connection every other request
                peer = RawPeer(b.url)
                peer.socket.setsockopt(zmq.RCVHWM, 1)
                deaf.append(peer)
            handled = b.broker.requests_done + b.broker.requests_refused
            peer.send(peer.signed("mallory", key, payload=protocol.pack_rows(rows(16, 8)),
                                  **{**fields, "id": f"r{i}"}))
            wait_until(lambda n=handled: b.broker.requests_done + b.broker.requests_refused > n,
                       what="the request's outcome")
        assert b.broker.requests_done == 3 and b.broker.requests_refused == 3
        assert sum(size for _, size, _ in b.broker.unreceived["mallory"].values()) == 3 * 2**20
        alice = b.client("alice")
        for _ in range(5):
            assert alice.transform({**PARAMS, "n_components": 2**16}, rows(16, 8))[0].nbytes \
                == 2**20
        wait_until(lambda: "alice" not in b.broker.unreceived, what="alice's receipts")
        for peer in deaf:
            peer.close()
        alice.close()


def test_numbers_too_big_for_a_float_are_refused_not_fatal(peers, broker):
    """A JSON integer of 400 digits where a number belongs: float() of it raises
    OverflowError, which once stopped the broker on a message nobody had signed."""
    huge = "1" + "0" * 400
    peer = peers()
    for field in ("ts", "seq"):
        header = {"v": 1, "op": "hello", "user": "x", "seq": 1, "ts": time.time()}
        raw = json.dumps(header).replace(f'"{field}": {header[field]}', f'"{field}": {huge}')
        peer.send([protocol.MAGIC, raw.encode(), b"", b""])
        answer = peer.receive()[0]
        assert answer["status"] == "error" and field in answer["error"], answer
    key = protocol.user_key(broker.secret, "mallory")
    for fields in ({"ones_fraction": 10**400}, {"override": {"exposure_us": 10**400}},
                   {"override": {"frametime_us": float("nan")}}):
        peer.seq += 1
        header = {"v": 1, "op": "transform", "user": "mallory", "seq": peer.seq,
                  "ts": time.time(), "id": f"r{peer.seq}", **transform_fields(), **fields}
        raw = json.dumps(header).encode()  # NaN too, as a hand-made client may send it
        payload = protocol.pack_rows(rows())
        peer.send([protocol.MAGIC, raw,
                   protocol.message_mac(key, protocol.REQUEST, raw, payload), payload])
        answer = peer.receive()[0]
        assert answer["status"] == "error" and "must be a number" in answer["error"], answer
    alice = broker.client("alice")
    assert alice.transform(PARAMS, rows())[0].shape == (8, 64)
    alice.close()


class SlowSeedDevice(SimulatedDevice):
    """A simulated device (1 ms a frame) on which seed 7 takes 0.3 s, as drawing a new
    matrix of a GiB takes seconds."""

    def run(self, params, rows):
        if params["seed"] == 7:
            time.sleep(0.3)
        return super().run(params, rows)


def test_a_slice_that_holds_the_device_for_long_is_charged_to_its_user(secret):
    """Two rows with a new seed each time cost the simulated device seconds (a new random
    matrix) but counted as two frames: one user could hold the broker for everyone. The time
    beyond the slack is charged to her in frames (share, quota, turns)."""
    with broker_in_thread(secret, device=SlowSeedDevice(frame_s=1e-3)) as b:
        mallory, alice = b.client("mallory"), b.client("alice")
        mallory.transform({**PARAMS, "seed": 7}, rows(2))
        alice.transform(PARAMS, rows(2))
        served = b.admin()["served_frames"]
        assert served["alice"] == 2
        assert served["mallory"] >= 2 + 200, served  # 0.3 s - 50 ms slack at 1 ms a frame
        assert mallory.status()["recent_frames"] == served["mallory"]
        mallory.close()
        alice.close()


def test_a_loop_of_new_connections_does_not_grow_the_brokers_memory(secret, monkeypatch):
    """Each connection has a session (its user, its last sequence number); a loop of new
    connections (1,700 a second from one cell) once kept them all for an hour. A user holds
    at most MAX_SESSIONS_PER_USER; beyond, her longest silent one is forgotten, and its next
    message simply starts a new one. Another user's sessions are not touched."""
    monkeypatch.setattr(server, "MAX_SESSIONS_PER_USER", 4)
    with broker_in_thread(secret) as b:
        alice = b.client("alice")
        alice.hello()
        key = protocol.user_key(secret, "mallory")
        peers = [RawPeer(b.url) for _ in range(10)]
        for peer in peers:
            peer.send(peer.signed("mallory", key, op="hello"))
            assert peer.receive()[0]["status"] == "ok"
        users = [s.user for s in b.broker.sessions.values()]
        assert users.count("mallory") == 4 and users.count("alice") == 1
        peers[0].send(peers[0].signed("mallory", key, op="status"))  # forgotten, still served
        assert peers[0].receive()[0]["status"] == "ok"
        assert alice.status()["status"] == "ok"
        for peer in peers:
            peer.close()
        alice.close()
