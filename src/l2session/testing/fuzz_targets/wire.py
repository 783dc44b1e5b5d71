"""Fuzz targets of ``wire/``: packets and the records inside DATA.

Seeds are the known-answer vectors (:func:`l2session.testing.vectors.wire_vector`)
plus a genuine handshake packet; every accepted input must re-encode to
the same bytes, because the encodings are canonical.
"""

from __future__ import annotations

import functools
from typing import Final

from l2session.testing.fuzz_targets._base import (
    _M,
    FuzzTarget,
    _decoder,
    _require,
)
from l2session.testing.fuzz_targets._fixtures import _handshake
from l2session.testing.vectors import wire_vector
from l2session.wire.packets import decode_packet, encode_packet
from l2session.wire.records import decode_records as _decode_records
from l2session.wire.records import encode_records


def _check_packet(data: bytes, packet: object) -> None:
    _require(encode_packet(packet) == bytes(data), "packet re-encodes to other bytes")  # type: ignore[arg-type]


@functools.cache
def _packet_seeds() -> tuple[bytes, ...]:
    vector = wire_vector()
    handshake = _handshake()
    return (
        *(bytes.fromhex(p["hex"]) for p in vector["packets"]),
        bytes.fromhex("0110") + handshake.initiator.session_id + handshake.init,
    )


def _check_records(data: bytes, records: object) -> None:
    _require(encode_records(records) == bytes(data), "records re-encode to other bytes")  # type: ignore[arg-type]


@functools.cache
def _record_seeds() -> tuple[bytes, ...]:
    vector = wire_vector()
    return tuple(bytes.fromhex(r["hex"]) for r in (*vector["records"], *vector["payloads"]))


#: The targets of wire/.
TARGETS: Final[tuple[FuzzTarget, ...]] = (
    _decoder(
        "wire_packets",
        ("l2session.wire.packets:decode_packet",),
        decode_packet,
        _packet_seeds,
        _M,
        verify=_check_packet,
    ),
    _decoder(
        "wire_records",
        ("l2session.wire.records:decode_records",),
        _decode_records,
        _record_seeds,
        _M,
        verify=_check_records,
    ),
)
