"""Reading one TOML value of a policy file: a string, a list of DIDs, a
trust score, an offset date-time, a quota window, a group name.  Every
reader checks the value's type and range and, when it is wrong, raises a
:class:`~l2session.errors.PolicyError` that points at its ``file:line``,
names the field (``grant #3 quota.window``) and says how to fix it.

:class:`FieldReader` is the part of the policy loader that knows TOML
values but not the policy's schema; :mod:`l2session.membrane.policy_file`
subclasses it with the tables (``[constraints]``, ``[groups]``,
``[[grant]]``) and their rules.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from datetime import date, datetime, time
from typing import Final

from l2session.errors import PolicyError
from l2session.membrane.policy import (
    GROUP_PREFIX,
    MAX_TIMESTAMP,
    MAX_WINDOW,
    MIN_WINDOW,
    format_window,
)
from l2session.membrane.toml_lines import KeyPath, LineLocator, field_name

DURATION: Final = re.compile(r"([0-9]{1,9})([smhd])")
UNIT_SECONDS: Final = {"s": 1, "m": 60, "h": 3_600, "d": 86_400}


# --------------------------------------------------------------------------
# Field names


def human_field(path: KeyPath) -> str:
    """How messages name a field: ``grant #3 quota.window``, ``groups.berlin[2]``."""
    if len(path) >= 2 and path[0] == "grant" and isinstance(path[1], int):
        rest = field_name(path[2:])
        return f"grant #{path[1]} {rest}" if rest else f"grant #{path[1]}"
    return field_name(path)


def kind_of(value: object) -> str:
    """A TOML value's type, as messages name it."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, datetime):
        return "a date-time"
    if isinstance(value, date):
        return "a date"
    if isinstance(value, time):
        return "a time"
    return type(value).__name__  # pragma: no cover - tomllib yields only the above


def suggest(word: str, choices: Iterable[str]) -> str | None:
    """The closest of ``choices`` to a misspelt ``word``, if one is close."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return close[0] if close else None


class FieldReader:
    """Reads the values of a parsed document, each with its line from the
    locator for messages."""

    __slots__ = ("lines", "source")

    def __init__(self, text: str, source: str) -> None:
        self.source = source
        self.lines = LineLocator(text)

    def error(self, path: KeyPath, problem: str, *, named: bool = True) -> PolicyError:
        """``file:line: FIELD: problem`` (``file:line: problem`` when the
        problem names the field itself)."""
        line = self.lines.line(path)
        head = f"{self.source}:{line}" if line else self.source
        human = human_field(path)
        text = f"{human}: {problem}" if named and human else problem
        return PolicyError(f"{head}: {text}", path=self.source, line=line, field=field_name(path))

    def missing(self, path: KeyPath, key: str, example: str) -> PolicyError:
        owner = human_field(path) or "the policy"
        return self.error((*path, key), f"{owner} has no {key!r}; add {example}", named=False)

    def check_keys(
        self, table: Mapping[str, object], path: KeyPath, known: tuple[str, ...]
    ) -> None:
        for key in table:
            if key in known:
                continue
            where = f"in {human_field(path)}" if path else "at the top level"
            if path == ("constraints",):
                where = "in [constraints]"
            close = suggest(key, known)
            hint = f"did you mean {close!r}?" if close else f"the keys are {', '.join(known)}"
            raise self.error((*path, key), f"unknown key {key!r} {where}; {hint}", named=False)

    # -- values -----------------------------------------------------------

    def string(self, path: KeyPath, value: object) -> str:
        if not isinstance(value, str):
            raise self.error(path, f"expected a string, got {kind_of(value)}")
        return value

    def strings(self, path: KeyPath, value: object) -> list[str]:
        if not isinstance(value, list):
            hint = ""
            if isinstance(value, str):
                hint = f" (write [{toml_quoted(value)}])"
            raise self.error(path, f"expected a list of strings, got {kind_of(value)}{hint}")
        for index, item in enumerate(value, 1):
            if not isinstance(item, str):
                raise self.error((*path, index), f"expected a string, got {kind_of(item)}")
        return value

    def table(self, path: KeyPath, value: object, example: str) -> dict[str, object]:
        if not isinstance(value, dict):
            raise self.error(path, f"expected a table such as {example}, got {kind_of(value)}")
        return value

    def integer(self, path: KeyPath, value: object, low: int, high: int) -> int:
        if isinstance(value, float) and value.is_integer():
            raise self.error(path, f"expected an integer, got a float; write {int(value)}")
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.error(path, f"expected an integer, got {kind_of(value)}")
        if not low <= value <= high:
            raise self.error(path, f"{value} is out of range; give a whole number {low}..{high}")
        return value

    def score(self, path: KeyPath, value: object) -> float:
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise self.error(path, f"expected a number from 0 to 1, got {kind_of(value)}")
        if not 0.0 <= value <= 1.0:
            raise self.error(
                path, f"{value!r} is out of range; a trust score is from 0 to 1, such as 0.5"
            )
        return float(value)

    def timestamp(self, path: KeyPath, value: object) -> float:
        example = "2027-01-01T00:00:00Z"
        if isinstance(value, datetime):
            if value.utcoffset() is None:
                raise self.error(
                    path,
                    f"date-time {value.isoformat()} has no UTC offset, so its instant "
                    f"would depend on the machine's time zone; give an offset such as Z "
                    f"({value.isoformat()}Z) or +01:00",
                )
            at = value.timestamp()
            if not 0.0 <= at <= MAX_TIMESTAMP:
                raise self.error(path, f"{value.isoformat()} is before 1970; give a later date")
            return at
        if isinstance(value, date):
            raise self.error(
                path,
                f"{value.isoformat()} is a date without a time; write a date-time with "
                f"an offset, such as {value.isoformat()}T00:00:00Z",
            )
        if isinstance(value, str):
            raise self.error(
                path,
                f"expected a date-time such as {example}, got a string; "
                "write the date-time without quotes",
            )
        raise self.error(path, f"expected a date-time such as {example}, got {kind_of(value)}")

    def window(self, path: KeyPath, value: object) -> float:
        shape = (
            "write a whole number followed by s, m, h or d (such as '30s', '5m', '1h', "
            "'1d'), or a whole number of seconds"
        )
        if isinstance(value, str):
            match = DURATION.fullmatch(value)
            if match is None:
                raise self.error(path, f"{value!r} is not a duration; {shape}")
            seconds = int(match.group(1)) * UNIT_SECONDS[match.group(2)]
        elif isinstance(value, int) and not isinstance(value, bool):
            seconds = value
        else:
            raise self.error(path, f"expected a duration, got {kind_of(value)}; {shape}")
        if not MIN_WINDOW <= seconds <= MAX_WINDOW:
            raise self.error(
                path,
                f"{value!r} is out of range; a window is from {format_window(MIN_WINDOW)} "
                f"to {format_window(MAX_WINDOW)}",
            )
        return float(seconds)

    def group_name(
        self, path: KeyPath, name: str, groups: Mapping[str, frozenset[str]], *, prefixed: bool
    ) -> str:
        if name in groups:
            return name
        close = suggest(name, groups)
        shown = f"{GROUP_PREFIX}{close}" if prefixed and close else close
        hint = f"did you mean {shown!r}?" if close else "define it under [groups]"
        raise self.error(path, f"group {name!r} is not defined in [groups]; {hint}")


def toml_quoted(text: str) -> str:
    """``text`` as a TOML basic string, for the examples in messages."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
