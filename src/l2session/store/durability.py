"""What a commit promises: the two durability modes both stores offer.

A commit (``Journal.commit``) is atomic and survives the *process* dying.
Whether it also survives *power loss* (or a kernel panic, or a hypervisor
reset) depends on whether the disk was told to keep it: an fsync.  An fsync
costs a disk round trip (milliseconds on many disks), so the stores do not
fsync every commit; the core raises a *barrier* (``Journal.sync``) before
anything it committed becomes a promise to someone else -- before a packet
leaves (an ACK or SACK, a denial notice, the answer that spent a ticket or
one-time prekey, a message under its sequence number) and before
``receive`` hands messages to the application -- and one barrier covers
every commit before it (group commit).

``"power"`` (the default)
    The barrier fsyncs.  Every promise survives power loss: an acknowledged
    message is never lost, a consumed ticket or one-time prekey never comes
    back, a message handed to the application is never handed over again.

``"process"`` (opt-in, today's behaviour before the barrier existed)
    The barrier does nothing; data reaches the disk when SQLite checkpoints
    (about every 8 MB of WAL) or the operating system writes it back.
    Survives a process crash exactly like ``"power"``.  **On power loss the
    commits since the last checkpoint may be lost although the peer was
    already told**: messages the peer was told were received are gone (the
    peer has deleted them: nobody can resend them, and nobody is told), a
    consumed resumption ticket or one-time prekey is usable again (a replay
    of the packet that spent it is accepted a second time), and messages
    already given to the application may be given again.  Choose it only
    where a power cut takes the peers down too, or losing the last moments
    of traffic is acceptable.
"""

from __future__ import annotations

from typing import Final, Literal

from l2session.errors import ConfigError

Durability = Literal["power", "process"]

#: The power-safe default: every barrier is an fsync.
POWER: Final = "power"
#: Opt-in: barriers do nothing; survives process crashes, not power loss.
PROCESS: Final = "process"
DURABILITY_MODES: Final = (POWER, PROCESS)


def check_durability(value: object) -> Durability:
    """``value`` as a durability mode, or ConfigError naming both."""
    if value == POWER:
        return "power"
    if value == PROCESS:
        return "process"
    raise ConfigError(
        f"durability must be 'power' (default: survives power loss) or 'process' "
        f"(survives process crashes only), got {value!r}"
    )
