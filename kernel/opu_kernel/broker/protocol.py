"""The wire format between kernels and the OPU broker (ZeroMQ multipart messages).

Pure: framing, keys, MACs, header validation and bit packing; no sockets.

A message is four frames: ``MAGIC``, a JSON header (at most ``HEADER_MAX`` bytes), a MAC and
a payload (bit-packed inputs in a request, the result in a reply; may be empty). Every request
names its ``user``, a per-connection increasing ``seq`` and a timestamp, and is MACed with that
user's key, which the hub derives from the broker's secret (:func:`user_key`) and hands to the
user's server only: a kernel holding Alice's key cannot sign as Bob. Replies are MACed with the
same key, so a kernel accepts results from the broker only. The MAC covers the header and the
payload (keyed BLAKE2b, domain-separated for requests and replies).

The transport is not encrypted: confidentiality between users rests on each connection's
random routing id (a 128-bit secret the kernel picks) and on the network isolation the hub
sets up (one container or Unix account per user, no capture rights).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import numpy as np

MAGIC = b"OPUB1"
VERSION = 1
HEADER_MAX = 4096
MAC_BYTES = 32
#: Routing ids a kernel must use: long and random, so that no one else can pose as its
#: connection to collect its replies (ZeroMQ's own ids are a guessable counter).
ROUTING_ID_BYTES = 16
#: Requests older (or newer) than this are refused: a captured message cannot be replayed later.
MAX_CLOCK_SKEW_S = 300.0
OPS = ("hello", "status", "transform", "ping", "cancel", "stats", "reserve", "release",
       "received")
#: Overrides a transform may carry, as ``OPU.fit1d(**override)`` / the simulator accept them.
OVERRIDE_KEYS = {"exposure_us": float, "frametime_us": float, "scale_features": int}
MAX_ID_CHARS = 64
MAX_USER_CHARS = 256
REQUEST, REPLY = b"opu-broker-req", b"opu-broker-rep"


class ProtocolError(ValueError):
    """A message the broker (or a client) refuses; the text says why, for the sender."""


def user_key(secret: bytes, user: str) -> bytes:
    """The key of ``user``: what the hub gives that user's server (``OPU_BROKER_KEY``, hex)."""
    if not secret:
        raise ValueError("the broker secret is empty")
    return hmac.new(secret, b"opu-broker/user-key/v1\0" + user.encode(), hashlib.sha256).digest()


def message_mac(key: bytes, direction: bytes, header: bytes, payload) -> bytes:
    digest = hashlib.blake2b(key=key, digest_size=MAC_BYTES, person=direction[:16])
    digest.update(len(header).to_bytes(8, "big"))
    digest.update(header)
    digest.update(payload)
    return digest.digest()


def encode(key: bytes | None, direction: bytes, header: dict, payload=b"") -> list:
    """Frames of a message; ``key`` None sends it unsigned (only refusals are)."""
    raw = json.dumps(header, separators=(",", ":"), allow_nan=False).encode()
    mac = b"" if key is None else message_mac(key, direction, raw, payload)
    return [MAGIC, raw, mac, payload]


def split(frames) -> tuple[dict, bytes, bytes, object]:
    """(header, raw header, mac, payload) of a message's frames; checks the framing only."""
    if len(frames) != 4:
        raise ProtocolError(f"a message has 4 frames, this one {len(frames)}")
    magic, raw, mac, payload = (f.buffer if hasattr(f, "buffer") else f for f in frames)
    if bytes(magic) != MAGIC:
        raise ProtocolError("not an OPU broker message (wrong magic): update opu_kernel")
    if len(raw) > HEADER_MAX:
        raise ProtocolError(f"header of {len(raw)} bytes exceeds {HEADER_MAX}")
    raw = bytes(raw)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        raise ProtocolError("header is not JSON") from None
    if not isinstance(header, dict):
        raise ProtocolError("header is not a JSON object")
    return header, raw, bytes(mac), payload


def verify(key: bytes, direction: bytes, raw: bytes, mac: bytes, payload) -> None:
    if len(mac) != MAC_BYTES or not hmac.compare_digest(
            message_mac(key, direction, raw, payload), mac):
        raise ProtocolError("authentication failed: the message is not signed with this "
                            "user's key (OPU_BROKER_KEY)")


# -- header fields ------------------------------------------------------------------------
def field_int(header: dict, name: str, low: int, high: int) -> int:
    value = header.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ProtocolError(f"{name} must be an integer in [{low}, {high}], got {value!r}"[:200])
    return value


def field_str(header: dict, name: str, max_chars: int) -> str:
    value = header.get(name)
    if not isinstance(value, str) or not 0 < len(value) <= max_chars or not value.isprintable():
        raise ProtocolError(f"{name} must be a printable string of 1 to {max_chars} characters")
    return value


def field_float(header: dict, name: str, low: float, high: float, optional=False):
    value = header.get(name)
    if value is None and optional:
        return None
    # compared as is (NaN and infinities fail the range check): math.isfinite() or float()
    # of a JSON integer of 400 digits raises OverflowError, which once stopped the broker
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ProtocolError(f"{name} must be a number in [{low}, {high}], got {value!r}"[:200])
    return float(value)


def check_envelope(header: dict, now: float | None = None) -> tuple[str, str, int]:
    """(op, user, seq) of a request header, after checking version, op and clock."""
    if header.get("v") != VERSION:
        raise ProtocolError(f"protocol version {header.get('v')!r} is not {VERSION}: "
                            "update opu_kernel")
    op = header.get("op")
    if op not in OPS:
        raise ProtocolError(f"unknown op {op!r}"[:100])
    user = field_str(header, "user", MAX_USER_CHARS)
    seq = field_int(header, "seq", 1, 2**62)
    now = time.time() if now is None else now
    stamp = field_float(header, "ts", 0.0, 1e11)
    if abs(stamp - now) > MAX_CLOCK_SKEW_S:
        raise ProtocolError("the request's clock is off by more than "
                            f"{MAX_CLOCK_SKEW_S:.0f} s (a replayed message?)")
    return op, user, seq


def check_transform(header: dict, limits: dict) -> dict:
    """The validated parameters of a transform request, within the broker's ``limits``
    (``max_rows``, ``max_n_features``, ``max_n_components``, ``max_result_bytes``)."""
    override = header.get("override") or {}
    if not isinstance(override, dict) or set(override) - set(OVERRIDE_KEYS):
        raise ProtocolError(f"override may hold only {sorted(OVERRIDE_KEYS)}")
    checked = {}
    for key, kind in OVERRIDE_KEYS.items():
        if key in override:
            checked[key] = (field_int(override, key, 1, 2**31) if kind is int
                            else field_float(override, key, 1e-3, 1e9))
    params = {
        "id": field_str(header, "id", MAX_ID_CHARS),
        "rows": field_int(header, "rows", 1, limits["max_rows"]),
        "n_features": field_int(header, "n_features", 1, limits["max_n_features"]),
        "n_components": field_int(header, "n_components", 1, limits["max_n_components"]),
        "seed": field_int(header, "seed", 0, 2**63 - 1),
        "ones_fraction": field_float(header, "ones_fraction", 0.0, 1.0, optional=True),
        "linear": header.get("linear", False),
        "override": checked,
    }
    if not isinstance(params["linear"], bool):
        raise ProtocolError("linear must be true or false")
    size = result_bytes(params)
    if size > limits["max_result_bytes"]:
        raise ProtocolError(
            f"the result would take {size} bytes, over this broker's {limits['max_result_bytes']}"
            "; send fewer rows at a time")
    return params


def result_bytes(params: dict) -> int:
    """The size of a transform's result: uint8 counts, float32 for a linear transform."""
    return params["rows"] * params["n_components"] * (4 if params["linear"] else 1)


# -- payloads -------------------------------------------------------------------------------
def packed_size(rows: int, n_features: int) -> int:
    return rows * ((n_features + 7) // 8)


def pack_rows(rows: np.ndarray) -> bytes:
    """0/1 rows (any numeric dtype, 2D) as bits, 8 per byte, each row padded to a byte."""
    return np.packbits(np.asarray(rows) != 0, axis=1).tobytes()


def unpack_rows(payload, rows: int, n_features: int) -> np.ndarray:
    expected = packed_size(rows, n_features)
    if len(payload) != expected:
        raise ProtocolError(f"payload of {len(payload)} bytes; {rows} rows of {n_features} "
                            f"features pack into {expected}")
    packed = np.frombuffer(payload, dtype=np.uint8).reshape(rows, -1)
    return np.unpackbits(packed, axis=1, count=n_features)


def result_array(payload, header: dict) -> np.ndarray:
    """The result array of a reply: uint8 counts, or float32 for a linear transform."""
    dtype = np.dtype(header.get("dtype", "uint8"))
    if dtype not in (np.uint8, np.float32):
        raise ProtocolError(f"unexpected result dtype {dtype}")
    rows, columns = header["shape"]
    if len(payload) != rows * columns * dtype.itemsize:
        raise ProtocolError("the result does not have the announced shape")
    return np.frombuffer(payload, dtype=dtype).reshape(rows, columns).copy()
