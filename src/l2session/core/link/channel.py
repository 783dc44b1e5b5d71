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

It also decides *when* the sending ratchet takes its DH steps (DESIGN.md
§3, CRYPTO.md §5.2).  A step per turn of a ping-pong costs two X25519
agreements and a key generation per side, more than half of a round trip;
so with ``step_interval`` > 0 a due step is taken only by a packet that
carries application data, and only once ``step_interval / 2`` has passed
since this side's last step or ``step_after`` packets went on the current
chain.  Half the interval per side is what bounds post-compromise healing
to one interval plus one round trip of two-way traffic (the proof is in
CRYPTO.md §5.2).  ``step_interval`` 0 steps at every turn, as Signal does.
"""

from __future__ import annotations

from l2session.crypto.ratchet import DoubleRatchet
from l2session.errors import MalformedMessage
from l2session.wire.packets import DataPacket, encode_packet
from l2session.wire.records import Message, Record, decode_records, encode_records

#: A due step is taken after this many packets on one sending chain even
#: before the interval has passed (a long one-way stream of data answered
#: by data still heals in bounded volume).
DEFAULT_STEP_AFTER = 4_096


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
        "step_after",
        "step_interval",
        "stepped_at",
    )

    def __init__(
        self,
        *,
        session_id: bytes,
        epoch: int,
        ratchet: DoubleRatchet,
        lineage: bytes,
        keyed_at: float,
        step_interval: float = 0.0,
        step_after: int = DEFAULT_STEP_AFTER,
    ) -> None:
        self.session_id = session_id
        self.step_interval = step_interval
        self.step_after = step_after
        #: When the sending ratchet last took a DH step (a fresh epoch's
        #: keys count as one).
        self.stepped_at = keyed_at
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
            self.stepped_at = now
            self.messages_sent = 0
            self.bytes_sent = 0

    def step_allowed(
        self, ratchet: DoubleRatchet, records: list[Record], now: float | None
    ) -> bool:
        """Whether a packet of ``records`` sealed at ``now`` may take the
        due DH step (see the module docstring).  ``now`` None (a Close
        sent without a clock) allows it only by count."""
        interval = self.step_interval
        if interval <= 0.0:
            return True
        if not any(type(record) is Message for record in records):
            return False  # control records never force a step
        if ratchet.send_chain_length >= self.step_after:
            return True
        return now is not None and now - self.stepped_at >= interval / 2

    def seal(self, records: list[Record], now: float | None = None) -> bytes:
        """Encrypt ``records`` under the sending epoch into a DATA packet."""
        plaintext = encode_records(records)
        ratchet = self._ratchets[self.send_epoch]
        due = ratchet.send_step_due
        defer = due and not self.step_allowed(ratchet, records, now)
        ciphertext = ratchet.encrypt(plaintext, defer_step=defer)
        if due and not ratchet.send_step_due and now is not None:
            self.stepped_at = now
        self.messages_sent += 1
        self.bytes_sent += len(plaintext)
        return encode_packet(DataPacket(self.session_id, self.send_epoch, ciphertext))

    def prepare_step(self, now: float) -> bool:
        """Draw the due step's key pair ahead, off the critical path, but
        only when the next data packet will take the step: a key drawn
        earlier would sit in memory where a compromise exposes it too."""
        ratchet = self._ratchets[self.send_epoch]
        if not ratchet.send_step_due:
            return False
        interval = self.step_interval
        if (
            interval > 0.0
            and now - self.stepped_at < interval / 2
            and ratchet.send_chain_length < self.step_after
        ):
            return False
        return ratchet.prepare_step()

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
