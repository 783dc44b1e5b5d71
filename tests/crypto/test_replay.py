"""The sliding replay window, against a plain set-based model."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from l2session.codec import Reader, Writer
from l2session.crypto.replay import DEFAULT_WINDOW, MIN_WINDOW, ReplayWindow
from l2session.errors import ConfigError, MalformedMessage, ReplayDetected


def test_new_numbers_pass_and_repeats_fail() -> None:
    window = ReplayWindow()
    for seq in (0, 1, 5, 3, 100):
        window.accept(seq)
    for seq in (0, 1, 5, 3, 100):
        with pytest.raises(ReplayDetected, match="already received"):
            window.check(seq)
    window.accept(2)
    window.accept(4)
    assert window.highest == 100


def test_check_does_not_commit() -> None:
    window = ReplayWindow()
    window.check(7)
    window.check(7)
    window.commit(7)
    with pytest.raises(ReplayDetected):
        window.check(7)


def test_numbers_below_the_window_are_refused_at_the_edge() -> None:
    window = ReplayWindow(MIN_WINDOW)
    window.accept(10_000)
    window.accept(10_000 - (MIN_WINDOW - 1))  # the oldest one still inside
    with pytest.raises(ReplayDetected, match="older than the replay window"):
        window.check(10_000 - MIN_WINDOW)


def test_a_jump_beyond_the_window_clears_it() -> None:
    window = ReplayWindow(MIN_WINDOW)
    window.accept(1)
    window.accept(1 + 10 * MIN_WINDOW)
    with pytest.raises(ReplayDetected, match="older"):
        window.check(1)
    window.accept(10 * MIN_WINDOW)  # inside the new window, never seen


def test_default_size_is_wireguard_sized() -> None:
    assert ReplayWindow().size == DEFAULT_WINDOW == 8192


@pytest.mark.parametrize("size", [0, 64, 2047, 2049, 1 << 17, "8192"])
def test_invalid_sizes_are_refused(size: object) -> None:
    with pytest.raises(ConfigError, match="replay window size"):
        ReplayWindow(size)  # type: ignore[arg-type]


@pytest.mark.parametrize("seq", [-1, 1 << 64])
def test_sequence_numbers_outside_64_bits_are_malformed(seq: int) -> None:
    with pytest.raises(MalformedMessage):
        ReplayWindow().check(seq)


def test_persistence_roundtrip() -> None:
    window = ReplayWindow(4096)
    for seq in (3, 9, 4000, 4001, 2):
        window.accept(seq)
    out = Writer()
    window.write(out)
    restored = ReplayWindow.read(Reader(out.getvalue()))
    assert restored.size == 4096
    assert restored.highest == 4001
    for seq in (3, 9, 4000, 4001):
        with pytest.raises(ReplayDetected):
            restored.check(seq)
    restored.check(5)


def test_empty_window_persists() -> None:
    out = Writer()
    ReplayWindow().write(out)
    assert ReplayWindow.read(Reader(out.getvalue())).highest is None


def test_corrupt_persisted_window_is_refused() -> None:
    out = Writer().u32(100)
    with pytest.raises(MalformedMessage, match="window size"):
        ReplayWindow.read(Reader(out.getvalue()))
    out = Writer().u32(MIN_WINDOW).flag(False).u64(0)
    out.raw(b"\x01" + bytes(MIN_WINDOW // 8 - 1))
    with pytest.raises(MalformedMessage, match="empty but has bits"):
        ReplayWindow.read(Reader(out.getvalue()))


class Model:
    """Accept a number iff not accepted before and above highest - size."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.seen: set[int] = set()
        self.top = -1

    def accepts(self, seq: int) -> bool:
        if seq in self.seen:
            return False
        return seq > self.top or self.top - seq < self.size

    def commit(self, seq: int) -> None:
        self.seen.add(seq)
        self.top = max(self.top, seq)


@settings(max_examples=300, deadline=None)
@given(
    size=st.sampled_from([2048, 4096, 8192]),
    steps=st.lists(st.tuples(st.booleans(), st.integers(0, 12_000)), max_size=200),
)
def test_window_matches_the_model(size: int, steps: list[tuple[bool, int]]) -> None:
    window, model = ReplayWindow(size), Model(size)
    previous = 0
    for near, value in steps:
        # Mix numbers near the last one (reordering, duplicates) with far ones.
        seq = max(0, previous + (value % 64) - 32) if near else value
        expected = model.accepts(seq)
        try:
            window.check(seq)
            accepted = True
        except ReplayDetected:
            accepted = False
        assert accepted == expected, (seq, model.top)
        if accepted:
            window.commit(seq)
            model.commit(seq)
            previous = seq
