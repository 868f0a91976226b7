"""The broker's wire format: keys, MACs, header checks and bit packing (pure)."""

import time

import numpy as np
import pytest

from opu_kernel.broker import protocol
from opu_kernel.broker.protocol import ProtocolError

LIMITS = {"max_rows": 100, "max_n_features": 1000, "max_n_components": 5000,
          "max_result_bytes": 100_000}


def header(**fields):
    return {"v": 1, "op": "transform", "user": "alice", "seq": 1, "ts": time.time(),
            "id": "r1", "rows": 10, "n_features": 20, "n_components": 100, "seed": 0,
            "ones_fraction": 0.5, **fields}


def test_user_keys_differ_per_user_and_secret():
    a = protocol.user_key(b"s" * 32, "alice")
    assert a != protocol.user_key(b"s" * 32, "bob")
    assert a != protocol.user_key(b"t" * 32, "alice")
    assert a == protocol.user_key(b"s" * 32, "alice") and len(a) == 32
    with pytest.raises(ValueError):
        protocol.user_key(b"", "alice")


def test_a_signed_message_verifies_and_any_change_breaks_it():
    key = protocol.user_key(b"s" * 32, "alice")
    frames = protocol.encode(key, protocol.REQUEST, header(), b"\x01\x02")
    parsed, raw, mac, payload = protocol.split(frames)
    protocol.verify(key, protocol.REQUEST, raw, mac, payload)
    assert parsed["user"] == "alice"
    with pytest.raises(ProtocolError, match="authentication failed"):
        protocol.verify(key, protocol.REQUEST, raw, mac, b"\x01\x03")
    with pytest.raises(ProtocolError, match="authentication failed"):
        protocol.verify(key, protocol.REQUEST, raw.replace(b"alice", b"alicf"), mac, payload)
    with pytest.raises(ProtocolError, match="authentication failed"):
        protocol.verify(protocol.user_key(b"s" * 32, "bob"), protocol.REQUEST, raw, mac,
                        payload)
    with pytest.raises(ProtocolError, match="authentication failed"):  # a reply is no request
        protocol.verify(key, protocol.REPLY, raw, mac, payload)


@pytest.mark.parametrize("frames, message", [
    ([b"OPUB1", b"{}", b""], "4 frames"),
    ([b"HTTP/", b"{}", b"", b""], "wrong magic"),
    ([b"OPUB1", b"x" * 5000, b"", b""], "exceeds"),
    ([b"OPUB1", b"\xff\xfe", b"", b""], "not JSON"),
    ([b"OPUB1", b"[1, 2]", b"", b""], "not a JSON object"),
])
def test_malformed_framing_is_refused(frames, message):
    with pytest.raises(ProtocolError, match=message):
        protocol.split(frames)


@pytest.mark.parametrize("change, message", [
    ({"v": 2}, "version"),
    ({"op": "format_disk"}, "unknown op"),
    ({"user": ""}, "user must be"),
    ({"user": "a\x00b"}, "user must be"),
    ({"seq": 0}, "seq must be"),
    ({"seq": True}, "seq must be"),
    ({"ts": time.time() - 3600}, "clock is off"),
])
def test_envelope_checks(change, message):
    with pytest.raises(ProtocolError, match=message):
        protocol.check_envelope(header(**change))


def test_envelope_gives_op_user_seq():
    assert protocol.check_envelope(header(seq=7)) == ("transform", "alice", 7)


@pytest.mark.parametrize("change, message", [
    ({"rows": 101}, "rows must be"),
    ({"rows": 0}, "rows must be"),
    ({"n_features": 1001}, "n_features must be"),
    ({"n_components": 10.5}, "n_components must be"),
    ({"seed": -1}, "seed must be"),
    ({"ones_fraction": 2.0}, "ones_fraction"),
    ({"ones_fraction": float("nan")}, "ones_fraction"),
    ({"linear": "yes"}, "linear must be"),
    ({"override": {"input_roi": [1, 2]}}, "override may hold only"),
    ({"override": {"exposure_us": -5}}, "exposure_us must be"),
    ({"n_components": 5000, "rows": 100}, "send fewer rows"),
    ({"id": "x" * 65}, "id must be"),
])
def test_transform_checks(change, message):
    with pytest.raises(ProtocolError, match=message):
        protocol.check_transform(header(**change), LIMITS)


def test_transform_parameters():
    params = protocol.check_transform(header(override={"exposure_us": 300}), LIMITS)
    assert params["override"] == {"exposure_us": 300.0} and params["linear"] is False
    assert params["ones_fraction"] == 0.5


@pytest.mark.parametrize("n_features", [1, 7, 8, 9, 300])
def test_rows_pack_eight_per_byte_and_come_back(n_features):
    rows = (np.random.default_rng(n_features).random((5, n_features)) < 0.5).astype(np.float32)
    payload = protocol.pack_rows(rows)
    assert len(payload) == protocol.packed_size(5, n_features) == 5 * -(-n_features // 8)
    back = protocol.unpack_rows(payload, 5, n_features)
    assert back.dtype == np.uint8 and np.array_equal(back, rows)
    with pytest.raises(ProtocolError, match="pack into"):
        protocol.unpack_rows(payload + b"\x00", 5, n_features)


def test_result_array_checks_the_announced_shape():
    data = np.arange(12, dtype=np.uint8)
    assert protocol.result_array(data.tobytes(), {"shape": [3, 4]}).shape == (3, 4)
    with pytest.raises(ProtocolError, match="announced shape"):
        protocol.result_array(data.tobytes(), {"shape": [4, 4]})
    with pytest.raises(ProtocolError, match="dtype"):
        protocol.result_array(data.tobytes(), {"shape": [3, 1], "dtype": "float64"})
