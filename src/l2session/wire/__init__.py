"""Wire layer: packets and records <-> bytes, stateless and bounds-checked.

Decoders raise :class:`~l2session.errors.MalformedMessage` and nothing else.
"""

from l2session.wire.packets import (
    BundlePacket,
    BundleRequest,
    DataPacket,
    HandshakePacket,
    Packet,
    ResumeAckPacket,
    ResumeEarlyPacket,
    ResumePacket,
    ResumeRejectPacket,
    decode_packet,
    encode_packet,
)
from l2session.wire.records import (
    Ack,
    Close,
    Heartbeat,
    HeartbeatAck,
    Message,
    Migrate,
    PathChallenge,
    PathResponse,
    Record,
    RotateDone,
    RotateInit,
    RotateResponse,
    Sync,
    decode_records,
    encode_records,
)

__all__ = [
    "Ack",
    "BundlePacket",
    "BundleRequest",
    "Close",
    "DataPacket",
    "HandshakePacket",
    "Heartbeat",
    "HeartbeatAck",
    "Message",
    "Migrate",
    "Packet",
    "PathChallenge",
    "PathResponse",
    "Record",
    "ResumeAckPacket",
    "ResumeEarlyPacket",
    "ResumePacket",
    "ResumeRejectPacket",
    "RotateDone",
    "RotateInit",
    "RotateResponse",
    "Sync",
    "decode_packet",
    "decode_records",
    "encode_packet",
    "encode_records",
]
