"""``OPU(backend="shared")``: the kernel's OPU API over the broker gives the in-process
simulator's bytes, and ``%opu`` shows the device, the queue, your position and share."""

import numpy as np
import pytest
from IPython.core.interactiveshell import InteractiveShell

from opu_kernel import OPU
from opu_kernel.backends import choose_backend
from opu_kernel.broker.client import BrokerError, BrokerUnavailable

from .conftest import broker_in_thread


@pytest.fixture
def shared_env(broker, monkeypatch):
    for name, value in broker.env("alice").items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("OPU_BACKEND", raising=False)
    return broker


def inputs(rows, features, seed=0, p=0.4):
    return (np.random.default_rng(seed).random((rows, features)) < p).astype(np.uint8)


def test_the_broker_url_selects_the_shared_backend(shared_env, monkeypatch):
    assert choose_backend() == "shared"
    monkeypatch.setenv("OPU_BACKEND", "simulator")
    assert choose_backend() == "simulator"
    monkeypatch.delenv("OPU_BROKER_URL")
    monkeypatch.delenv("OPU_BACKEND")
    assert choose_backend() in ("simulator", "hardware")


@pytest.mark.parametrize("seed", [0, 3])
def test_shared_transforms_are_the_in_process_simulators_bytes(shared_env, seed):
    X = inputs(300, 200, seed)
    shared = OPU(n_components=700, max_n_features=1000, seed=seed)
    local = OPU(n_components=700, max_n_features=1000, seed=seed, backend="simulator")
    assert shared.backend == "shared"
    for opu in (shared, local):
        opu.fit1d(X)
    Y, R = shared.transform(X), local.transform(X)
    assert Y.dtype == np.uint8 and Y.shape == (300, 700)
    assert np.array_equal(np.asarray(Y), np.asarray(R))
    assert Y.context.exposure_us == R.context.exposure_us
    assert Y.context.saturated == pytest.approx(R.context.saturated)
    assert Y.context.backend == "shared"
    # a single row, a 2D input and a packed one
    assert np.array_equal(np.asarray(shared.transform(X[5])), np.asarray(local.transform(X[5])))
    packed = np.packbits(X, axis=1)
    for opu in (shared, local):
        opu.fit1d(n_features=200, packed=True)
    assert np.array_equal(np.asarray(shared.transform(packed)),
                          np.asarray(local.transform(packed)))
    X2 = inputs(40, 20 * 10, seed).reshape(40, 20, 10)
    for opu in (shared, local):
        opu.fit2d(X2, exposure_us=250)
    assert np.array_equal(np.asarray(shared.transform(X2)), np.asarray(local.transform(X2)))
    assert shared.last_context.exposure_us == 250
    lin_s, lin_l = (OPU(n_components=50, backend=b, max_n_features=1000).fit1d(X)
                    for b in ("shared", "simulator"))
    assert np.array_equal(lin_s.linear_transform(X), lin_l.linear_transform(X))


def test_big_batches_go_in_parts_within_the_brokers_limits(secret, monkeypatch):
    from opu_kernel.broker.server import Limits

    with broker_in_thread(secret, limits=Limits(max_rows=64, max_result_bytes=50 * 100)) as b:
        for name, value in b.env("bob").items():
            monkeypatch.setenv(name, value)
        X = inputs(333, 64, 1)
        shared = OPU(n_components=100, max_n_features=64).fit1d(X)
        local = OPU(n_components=100, max_n_features=64, backend="simulator").fit1d(X)
        assert np.array_equal(np.asarray(shared.transform(X)), np.asarray(local.transform(X)))
        assert b.admin()["requests_done"] == 7  # 333 rows in parts of 50 (the result cap)
    # and within the message cap: 8 bytes per packed row, room for 40 rows beside the header
    with broker_in_thread(secret, limits=Limits(max_message_bytes=8192 + 8 * 40)) as b:
        for name, value in b.env("bob").items():
            monkeypatch.setenv(name, value)
        shared = OPU(n_components=100, max_n_features=64).fit1d(X)
        assert np.array_equal(np.asarray(shared.transform(X)), np.asarray(local.transform(X)))
        assert b.admin()["requests_done"] == 9


def test_what_the_shared_opu_cannot_do_is_said(shared_env, broker):
    with pytest.raises(ValueError, match="camera='8bit'"):
        OPU(backend="shared", camera="exact")
    opu = OPU(n_components=10, max_n_features=64)
    with pytest.raises(ValueError, match="does not take"):
        opu.fit1d(n_features=64, input_roi=((0, 0), (8, 8)))
        opu.transform(inputs(2, 64))
    huge = OPU(n_components=200_000, max_n_features=5000).fit1d(n_features=5000)
    with pytest.raises(BrokerError, match="simulated shared OPU holds random matrices"):
        huge.transform(inputs(2, 5000))


def test_an_unreachable_broker_fails_clearly(monkeypatch, broker):
    monkeypatch.setenv("OPU_BROKER_URL", "tcp://127.0.0.1:9")  # nothing listens there
    for name in ("OPU_BROKER_USER", "OPU_BROKER_KEY"):
        monkeypatch.setenv(name, broker.env("alice")[name])
    from opu_kernel.backends.shared import SharedBackend
    from opu_kernel.broker.client import BrokerClient

    client = BrokerClient.from_env(connect_timeout_s=0.5)
    with pytest.raises(BrokerUnavailable, match="did not answer within 0.5 s"):
        OPU(opu_device=SharedBackend(client=client))
    monkeypatch.delenv("OPU_BROKER_KEY")
    with pytest.raises(BrokerError, match="OPU_BROKER_KEY"):
        OPU(backend="shared")


def test_percent_opu_shows_device_queue_position_and_share(shared_env, monkeypatch, capsys):
    import opu_kernel.extension as extension

    monkeypatch.setattr(extension, "_state", {})
    shell = InteractiveShell.instance()
    try:
        extension.load(shell)
        shell.run_line_magic("opu", "")
        before = capsys.readouterr().out
        assert "backend" in before and "shared" in before
        assert "shared: simulated" in before and "your_position" in before
        assert "device_node" not in before
        shell.user_ns["opu"].fit1d(n_features=64)
        shell.user_ns["opu"].transform(inputs(20, 64))
        shell.run_line_magic("opu", "")
        after = capsys.readouterr().out
        assert "your_share" in after and "100% of the frames" in after
        assert "queue" in after and "0 requests" in after
    finally:
        extension.close_device()
        InteractiveShell.clear_instance()


def test_percent_opu_shows_the_quota_used_and_a_request_over_it_is_refused(secret):
    from opu_kernel.backends.shared import broker_status
    from opu_kernel.broker.scheduler import FairScheduler

    with broker_in_thread(secret, scheduler=FairScheduler(quota_frames=50,
                                                          quota_window_s=7200)) as b:
        alice = b.client("alice")
        params = {"n_components": 64, "seed": 0, "ones_fraction": 0.5, "override": {}}
        alice.transform(params, inputs(40, 64))
        assert broker_status(alice)["your_quota"] == \
            "40 of 50 frames used over the last 2 h"
        with pytest.raises(BrokerError, match="used 40 of 50 frames"):
            alice.transform(params, inputs(20, 64))
        assert "your_quota" in broker_status(b.client("bob"))  # 0 of 50
        alice.close()
