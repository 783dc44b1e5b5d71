"""Hypothesis helpers for fuzzing decoders (test-only; needs hypothesis).

One mutation strategy shared by every decoder's fuzz test, so that each
decoder is hit by the same kinds of damage: bit flips, byte overwrites with
boundary values, insertions, deletions and truncation.
"""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import strategies as st


def mutate(
    draw: st.DrawFn, data: bytes, interesting: Sequence[int] = (0, 1, 0x7F, 0x80, 0xFF)
) -> bytes:
    """``data`` with one to four random mutations drawn with ``draw``."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "set"]))
        pos = draw(st.integers(0, max(0, len(out) - 1)))
        if op == "flip" and out:
            out[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and out:
            out[pos] = draw(st.sampled_from(list(interesting)))
        elif op == "insert":
            out[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del out[pos : pos + draw(st.integers(1, 8))]
        else:
            del out[pos:]
    return bytes(out)


def overwrite(
    draw: st.DrawFn, data: bytes, interesting: Sequence[int] = (0, 1, 0x7F, 0x80, 0xFF)
) -> bytes:
    """``data`` with one to four bytes changed in place (a flipped bit or a
    boundary value): the length stays, so the damage gets past every length
    check and reaches the range, signature and MAC checks behind them, which
    :func:`mutate` (mostly changing the length) rarely does."""
    out = bytearray(data)
    if not out:
        return bytes(out)
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, len(out) - 1))
        if draw(st.booleans()):
            out[pos] ^= 1 << draw(st.integers(0, 7))
        else:
            out[pos] = draw(st.sampled_from(list(interesting)))
    return bytes(out)
