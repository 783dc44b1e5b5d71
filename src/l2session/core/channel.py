"""The encrypted channel of one session: a Double Ratchet per key epoch.

Rotation installs a new epoch next to the current one instead of changing
the current ratchet in place (the reference Rust layer's epoch design): the
DATA packet names its epoch in clear, so the receiver picks the right
ratchet without trial decryption, and messages still in flight under the old
epoch decrypt after the switch (DESIGN.md §2.3: "until the peer proves it
switched, old receive keys stay usable").  At most two epochs are held: the
current one and the one before it.

The channel also counts what was sent under the current epoch, for the
volume limit that forces a rotation long before any AEAD or chain limit.
"""

from __future__ import annotations

from l2session.crypto.ratchet import DoubleRatchet
from l2session.errors import MalformedMessage
from l2session.wire.packets import DataPacket, encode_packet
from l2session.wire.records import Record, decode_records, encode_records


class Channel:
    """Ratchets by key epoch, the epoch used for sending, and the lineage
    key the next epoch derives from."""

    __slots__ = (
        "_lineages",
        "_ratchets",
        "bytes_sent",
        "keyed_at",
        "lineage",
        "messages_sent",
        "send_epoch",
        "session_id",
    )

    def __init__(
        self,
        *,
        session_id: bytes,
        epoch: int,
        ratchet: DoubleRatchet,
        lineage: bytes,
        keyed_at: float,
    ) -> None:
        self.session_id = session_id
        self.send_epoch = epoch
        self._ratchets: dict[int, DoubleRatchet] = {epoch: ratchet}
        #: The lineage each installed epoch derived: the next rotation
        #: derives from the newest one still installed (see :meth:`discard`).
        self._lineages: dict[int, bytes] = {epoch: lineage}
        self.lineage = lineage
        self.keyed_at = keyed_at
        self.messages_sent = 0
        self.bytes_sent = 0

    @property
    def newest_epoch(self) -> int:
        return max(self._ratchets)

    def install(self, epoch: int, ratchet: DoubleRatchet, lineage: bytes) -> None:
        """Add the ratchet of a new epoch (receive-only until
        :meth:`switch_send`); epochs older than the current one are dropped."""
        if epoch <= self.newest_epoch:
            raise MalformedMessage(f"key epoch {epoch} is not newer than {self.newest_epoch}")
        for old in [e for e in self._ratchets if e < self.send_epoch]:
            del self._ratchets[old]
            self._lineages.pop(old, None)
        self._ratchets[epoch] = ratchet
        self._lineages[epoch] = lineage
        self.lineage = lineage

    def discard(self, epoch: int) -> None:
        """Forget an installed epoch that never became the sending one (an
        abandoned rotation), and its lineage with it: the lineage is again
        the one of the newest epoch left, which is what the peer -- who
        never got our ROTATE_RESPONSE -- still holds, so the next rotation
        derives the same keys on both sides."""
        if epoch != self.send_epoch and self._ratchets.pop(epoch, None) is not None:
            self._lineages.pop(epoch, None)
            self.lineage = self._lineages[self.newest_epoch]

    def switch_send(self, epoch: int, now: float) -> None:
        if epoch not in self._ratchets:
            raise MalformedMessage(f"key epoch {epoch} is not installed")
        if epoch != self.send_epoch:
            self.send_epoch = epoch
            self.keyed_at = now
            self.messages_sent = 0
            self.bytes_sent = 0

    def seal(self, records: list[Record]) -> bytes:
        """Encrypt ``records`` under the sending epoch into a DATA packet."""
        plaintext = encode_records(records)
        ciphertext = self._ratchets[self.send_epoch].encrypt(plaintext)
        self.messages_sent += 1
        self.bytes_sent += len(plaintext)
        return encode_packet(DataPacket(self.session_id, self.send_epoch, ciphertext))

    def open(self, packet: DataPacket) -> list[Record]:
        """Authenticate and decrypt one DATA packet.

        Raises MalformedMessage (unknown epoch, undecodable records) or the
        ratchet's typed errors; the ratchet commits only after its AEAD and
        replay checks pass.
        """
        ratchet = self._ratchets.get(packet.epoch)
        if ratchet is None:
            raise MalformedMessage(f"DATA packet under unknown key epoch {packet.epoch}")
        return decode_records(ratchet.decrypt(packet.ciphertext))
