"""Finding 5: resources are canonicalised once, for the check and the match.

Before the fix ``chapter://berlin/proposals/..%2F..%2Fmunich%2Fbudget`` was
allowed by a grant on ``chapter://berlin/proposals``: the grant matched the
raw string, and an application that percent-decodes and resolves the path
acted on ``chapter://munich/budget``.  Now the one function
``canonical_resource`` decodes once, refuses dot segments, ``//``,
backslashes and double encoding, and is used for grants and requests alike;
the application gets exactly the canonical string that was checked.
"""

from __future__ import annotations

from urllib.parse import unquote

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from l2session.core.link.envelope import Request, canonical_resource, resource_problem
from l2session.errors import ConfigError
from l2session.membrane.policy import Grant, MembranePolicy

PREFIX = "chapter://berlin/proposals"
GRANT = Grant(1, frozenset({"*"}), PREFIX, frozenset({"read"}))
POLICY = MembranePolicy((GRANT,))
PEER = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"


def _what_an_application_sees(resource: str) -> list[str]:
    """An independent, lenient reading: decode until stable, treat
    backslashes as slashes, resolve dot segments, drop empty ones."""
    path = resource.split("://", 1)[1]
    for _ in range(4):
        path = unquote(path)
    segments: list[str] = []
    for segment in path.replace("\\", "/").split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if segments:
                segments.pop()
            continue
        segments.append(segment)
    return segments


def _allowed(resource: str) -> bool:
    try:
        request = Request("read", resource)
    except ConfigError:
        return False
    return bool(POLICY.matching(PEER, request))


def test_the_reported_escape_is_refused() -> None:
    assert not _allowed(f"{PREFIX}/..%2F..%2Fmunich%2Fbudget")
    assert not _allowed(f"{PREFIX}/%2E%2E/%2e%2e/munich/budget")
    assert not _allowed(f"{PREFIX}/..\\..\\munich")
    assert not _allowed(f"{PREFIX}/%252E%252E/munich")  # encoded twice
    assert _allowed(f"{PREFIX}/draft%2Fone")  # an encoded separator is a separator
    assert Request("read", f"{PREFIX}/draft%2Fone").resource == f"{PREFIX}/draft/one"


_PIECES = st.sampled_from(["..", ".", "", "munich", "budget", "proposals", "berlin", "a b", "é"])
_SEPARATORS = st.sampled_from(["/", "%2F", "%2f", "\\", "%5C", "%252F", "//"])


@st.composite
def _encoded(draw: st.DrawFn, text: str) -> str:
    """``text`` with any of its characters percent-encoded (any case)."""
    out = []
    for char in text:
        if char == "/" or not draw(st.booleans()):
            out.append(
                char if char.isascii() and char != " " else "%20" if char == " " else "%C3%A9"
            )
        else:
            hexes = "".join(f"%{b:02X}" for b in char.encode())
            out.append(hexes.lower() if draw(st.booleans()) else hexes)
    return "".join(out)


@st.composite
def _resources(draw: st.DrawFn) -> str:
    pieces = draw(st.lists(_PIECES, min_size=1, max_size=6))
    tail = ""
    for piece in pieces:
        tail += draw(_SEPARATORS) + draw(_encoded(piece))
    base = draw(st.sampled_from([PREFIX, "chapter://berlin", "chapter://berlin/proposalsx"]))
    return base + tail


@settings(max_examples=300, deadline=None)
@given(_resources())
@example(f"{PREFIX}/..%2F..%2Fmunich%2Fbudget")
def test_no_resource_outside_the_grant_in_any_encoding_is_allowed(resource: str) -> None:
    granted = _what_an_application_sees(PREFIX)
    if _allowed(resource):
        seen = _what_an_application_sees(resource)
        assert seen[: len(granted)] == granted, (resource, seen)
        # What the application is handed means the same as what was sent.
        canonical = Request("read", resource).resource
        assert _what_an_application_sees(canonical) == seen


@settings(max_examples=300, deadline=None)
@given(_resources())
def test_canonical_form_is_idempotent_and_one_check(resource: str) -> None:
    problem = resource_problem(resource)
    if problem is not None:
        with pytest.raises(ConfigError):
            canonical_resource(resource)
        return
    canonical = canonical_resource(resource)
    assert canonical_resource(canonical) == canonical
    assert resource_problem(canonical) is None
    assert GRANT.covers(resource) == GRANT.covers(canonical)


def test_grants_are_canonicalised_like_requests() -> None:
    grant = Grant(1, frozenset({"*"}), "chapter://berlin%2Fproposals/", frozenset({"read"}))
    assert grant.resource == PREFIX
    with pytest.raises(ConfigError, match="segment; name the resource"):
        Grant(1, frozenset({"*"}), "chapter://berlin/%2e%2e", frozenset({"read"}))
    with pytest.raises(ConfigError, match="malformed %-escape"):
        Request("read", "chapter://berlin/%zz")
