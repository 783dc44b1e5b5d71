"""Where each key of a TOML document is written: the line locator behind the
policy file's ``file:line:`` messages.

``tomllib`` parses TOML into plain values and keeps no positions, yet a
policy error is only useful if it points at the line to fix.  This module
scans the text a second time, after ``tomllib`` has accepted it, and maps
each key path (``("grant", 3, "quota", "window")``) to its line.  It knows
all of TOML's structure: ``[table]`` and ``[[array]]`` headers (dotted,
quoted), ``key = value`` lines (dotted and quoted keys), inline tables,
arrays over several lines (each element on its own line), every kind of
string (a ``#`` or ``[`` inside a string is not structure) and comments.
It never raises: at worst it knows fewer lines, and a field it cannot place
is blamed on its enclosing key, its table's header, or the file (line 0).
"""

from __future__ import annotations

import bisect
import contextlib
import re
import tomllib
from collections.abc import Mapping
from typing import Final, TypeAlias

#: A field's place in the document: keys, and 1-based positions in arrays
#: (``("grant", 3, "quota", "window")``, ``("groups", "berlin", 2)``).
KeyPath: TypeAlias = tuple[str | int, ...]

_BARE_KEY: Final = re.compile(r"[A-Za-z0-9_-]+")


def field_name(path: KeyPath) -> str:
    """``("grant", 3, "quota", "window")`` -> ``"grant[3].quota.window"``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            text = part if _BARE_KEY.fullmatch(part) else f'"{part}"'
            out += f".{text}" if out else text
    return out


class LineLocator:
    """Where each key and array element of a TOML document is written.

    :meth:`line` maps a :data:`KeyPath` to its 1-based line, falling back to
    the nearest enclosing key or table header, and 0 when none is known.  It
    assumes the text is valid TOML (the loader runs ``tomllib`` first) and
    never raises on anything else: at worst it knows fewer lines.
    """

    __slots__ = ("_arrays", "_lines", "_newlines", "_pos", "_text")

    def __init__(self, text: str) -> None:
        self._text = text
        self._pos = 0
        self._newlines = [i for i, c in enumerate(text) if c == "\n"]
        self._lines: dict[KeyPath, int] = {}
        self._arrays: dict[KeyPath, int] = {}
        with contextlib.suppress(IndexError, RecursionError):  # only if not valid TOML
            self._document()

    def line(self, path: KeyPath) -> int:
        """The line of ``path``, or of its nearest located ancestor, or 0."""
        while path:
            found = self._lines.get(path)
            if found is not None:
                return found
            path = path[:-1]
        return 0

    def known(self) -> Mapping[KeyPath, int]:
        """Every located path and its line."""
        return dict(self._lines)

    # -- scanning ---------------------------------------------------------

    def _line_at(self, pos: int) -> int:
        return bisect.bisect_left(self._newlines, pos) + 1

    def _record(self, path: KeyPath, pos: int) -> None:
        self._lines.setdefault(path, self._line_at(pos))

    def _peek(self) -> str:
        return self._text[self._pos : self._pos + 1]

    def _skip_spaces(self) -> None:
        text, pos = self._text, self._pos
        while pos < len(text) and text[pos] in " \t":
            pos += 1
        self._pos = pos

    def _skip_blank(self) -> None:
        """Spaces, newlines and comments."""
        text = self._text
        while self._pos < len(text):
            c = text[self._pos]
            if c in " \t\r\n":
                self._pos += 1
            elif c == "#":
                end = text.find("\n", self._pos)
                self._pos = len(text) if end < 0 else end
            else:
                return

    def _document(self) -> None:
        text = self._text
        table: KeyPath = ()
        while True:
            self._skip_blank()
            if self._pos >= len(text):
                return
            start = self._pos
            if text.startswith("[[", start):
                self._pos += 2
                keys = self._key()
                path = self._resolve(keys[:-1]) + tuple(keys[-1:])
                count = self._arrays.get(path, 0) + 1
                self._arrays[path] = count
                table = (*path, count)
                self._record(path, start)
                self._record(table, start)
                self._skip_spaces()
                self._pos += 2  # ]]
            elif text[start] == "[":
                self._pos += 1
                table = self._resolve(self._key())
                self._record(table, start)
                self._skip_spaces()
                self._pos += 1  # ]
            else:
                keys = self._key()
                if not keys:
                    self._pos = start + 1  # not TOML; make progress
                    continue
                self._assignment(table, keys, start)

    def _resolve(self, keys: list[str]) -> KeyPath:
        """A header's keys as a path: an array of tables stands for its
        latest element (``[grant.quota]`` is in the last ``[[grant]]``)."""
        path: KeyPath = ()
        for key in keys:
            path = (*path, key)
            count = self._arrays.get(path)
            if count is not None:
                path = (*path, count)
        return path

    def _assignment(self, table: KeyPath, keys: list[str], start: int) -> None:
        for i in range(1, len(keys) + 1):
            self._record(table + tuple(keys[:i]), start)
        self._skip_spaces()
        if self._peek() == "=":
            self._pos += 1
        self._skip_spaces()
        self._value(table + tuple(keys))

    def _key(self) -> list[str]:
        """A dotted key: bare, "basic" or 'literal' parts."""
        parts: list[str] = []
        text = self._text
        while True:
            self._skip_spaces()
            c = self._peek()
            if c == '"':
                raw = self._basic_string()
                parts.append(_decode_basic(raw))
            elif c == "'":
                raw = self._literal_string()
                parts.append(raw[1:-1])
            else:
                match = _BARE_KEY.match(text, self._pos)
                if match is None:
                    return parts
                parts.append(match.group())
                self._pos = match.end()
            self._skip_spaces()
            if self._peek() != ".":
                return parts
            self._pos += 1

    def _value(self, path: KeyPath) -> None:
        text, pos = self._text, self._pos
        if text.startswith('"""', pos) or text.startswith("'''", pos):
            self._multiline_string(text[pos])
        elif text.startswith('"', pos):
            self._basic_string()
        elif text.startswith("'", pos):
            self._literal_string()
        elif text.startswith("[", pos):
            self._array(path)
        elif text.startswith("{", pos):
            self._inline_table(path)
        else:  # number, boolean, date-time (which may hold a space)
            while pos < len(text) and text[pos] not in ",]}#\r\n":
                pos += 1
            self._pos = max(pos, self._pos + 1)

    def _basic_string(self) -> str:
        text, start = self._text, self._pos
        pos = start + 1
        while pos < len(text) and text[pos] != '"':
            pos += 2 if text[pos] == "\\" else 1
        self._pos = pos + 1
        return text[start : self._pos]

    def _literal_string(self) -> str:
        text, start = self._text, self._pos
        end = text.find("'", start + 1)
        self._pos = len(text) if end < 0 else end + 1
        return text[start : self._pos]

    def _multiline_string(self, quote: str) -> None:
        text = self._text
        pos = self._pos + 3
        while pos < len(text):
            if quote == '"' and text[pos] == "\\":
                pos += 2
            elif text.startswith(quote * 3, pos):
                # A run of up to five quotes: the last three close the string.
                end = pos
                while end < len(text) and text[end] == quote and end - pos < 5:
                    end += 1
                self._pos = end
                return
            else:
                pos += 1
        self._pos = len(text)

    def _array(self, path: KeyPath) -> None:
        self._pos += 1
        index = 0
        while True:
            self._skip_blank()
            c = self._peek()
            if c in ("", "]"):
                self._pos += 1
                return
            if c == ",":
                self._pos += 1
                continue
            index += 1
            element = (*path, index)
            self._record(element, self._pos)
            self._value(element)

    def _inline_table(self, path: KeyPath) -> None:
        self._pos += 1
        while True:
            self._skip_blank()
            c = self._peek()
            if c in ("", "}"):
                self._pos += 1
                return
            if c == ",":
                self._pos += 1
                continue
            start = self._pos
            keys = self._key()
            if not keys:
                self._pos = start + 1
                continue
            self._assignment(path, keys, start)


def _decode_basic(raw: str) -> str:
    """A "basic" quoted key's text, escapes and all (tomllib decodes it)."""
    if "\\" not in raw:
        return raw[1:-1]
    try:
        value = tomllib.loads(f"k = {raw}")["k"]
    except tomllib.TOMLDecodeError:  # pragma: no cover - the document parsed
        return raw[1:-1]
    return value if isinstance(value, str) else raw[1:-1]


__all__ = ["KeyPath", "LineLocator", "field_name"]
