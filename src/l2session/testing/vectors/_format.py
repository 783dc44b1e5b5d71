"""What every known-answer vector shares: its format tag, the fixed
"now" of its timestamps, the ratchet's per-turn DH step, and hex output.

One place, so that the crypto, wire and session builders cannot drift
apart on what a vector file looks like.
"""

from __future__ import annotations

from typing import Final

VECTOR_FORMAT: Final = "l2session-kat-v1"
#: 2027-01-15T08:00:00Z, a fixed "now" for every timestamp in the vectors.
VECTOR_NOW: Final = 1_800_000_000.0
#: The vectors pin a DH ratchet step at every turn (``dh_step_interval`` 0,
#: CRYPTO.md §5.2): the sparse default changes no byte a receiver sees.
PER_TURN: Final = 0.0


def _hex(data: bytes) -> str:
    return data.hex()
