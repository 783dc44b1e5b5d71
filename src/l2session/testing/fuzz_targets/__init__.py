"""Fuzz targets: every decoder of untrusted bytes and every handshake
handler, in one registry.

The Hypothesis tests (``tests/fuzz``) and the atheris scripts (``fuzz/``)
both run :data:`TARGETS`, so a decoder is fuzzed the same way in the normal
suite and in a long campaign, and a crash found by one reproduces in the
other.  Each :class:`FuzzTarget` has

* ``run(data)`` (``check(data)`` also says whether the input was
  accepted): feeds ``data`` to the decoder or handler.  It returns quietly
  when the input is refused with one of the typed errors the decoder
  documents (``refuses``); anything else propagates and is a finding.
  When the input is *accepted*, it checks what is cheap to check:
  re-encoding gives the same bytes (the encodings are canonical, and the
  handshake transcript hashes them), and a handler that refused left its
  state exactly as it was (the genuine message still completes it);
* ``seeds()``: a few valid inputs built with the project's own encoders, so
  that mutations reach the code behind the first length check;
* ``entries``: the ``module:qualname`` of every decoder function the target
  drives; ``tests/fuzz`` holds the list against an inventory of the source,
  so a new decoder without a target fails the suite.

A finding is an exception outside ``refuses``: ``IndexError``,
``UnicodeError``, ``RecursionError``, ``OverflowError`` and the like mean a
hostile peer (or file) can crash its caller; :class:`PropertyViolation`
means the decoder accepted something it should not have, or a refused input
changed state.  Hangs and memory are the runner's business (libFuzzer's
``-timeout`` and ``-rss_limit_mb``); every loop in the targets is bounded.

**Text.** Decoders that take ``str`` get ``data.decode("utf-8",
"surrogateescape")``: every byte string maps to some text, and bytes that
are not UTF-8 become lone surrogates (U+DC80..U+DCFF).  A Python ``str``
really can hold those (``sys.argv`` on a non-UTF-8 file name, a JSON
``"\\udc80"`` escape), so the decoders must refuse them with their typed
errors too, and no input is wasted on a "not UTF-8" early return.

**Determinism.** Keys come from fixed :class:`SeededRandom` streams.  ML-KEM
encapsulation is the one operation OpenSSL randomizes by itself; the
targets use :data:`ENCAPSULATOR`, which is a function of the public key and
32 bytes drawn from the injected stream (FIPS 203 ``Encaps_internal`` when
``kyber-py`` is installed, as in the ``test`` and ``fuzz`` extras; without
it, OpenSSL's result memoized for the process).  So every handshake a
target replays is the same on every run, and with ``kyber-py`` the seeds
are the same bytes in every process (a corpus stays valid).

**Layout.** One module per layer, each with its targets in its own
``TARGETS``: :mod:`.wire`, :mod:`.transports` (and addresses, peers),
:mod:`.crypto`, :mod:`.identity`, :mod:`.session` (envelope, stored
sessions, resumption), :mod:`.manager` (whole datagrams into a
``SessionManager``, and :class:`Duo`) and :mod:`.membrane`.  What they share
is in :mod:`._base` (the record, the constructors) and :mod:`._fixtures`
(the keys and the one genuine handshake).  This package collects them into
:data:`TARGETS` and :data:`BY_NAME`; every public name is importable from
here, as it was when the registry was one module.

This package imports neither Hypothesis nor atheris: the atheris scripts run
with only the ``fuzz`` extra installed.  Product code never imports it.
"""

from __future__ import annotations

from typing import Final

from l2session.errors import ConfigError
from l2session.testing.fuzz_targets import (
    crypto,
    identity,
    manager,
    membrane,
    session,
    transports,
    wire,
)
from l2session.testing.fuzz_targets._base import (
    NOW,
    POLICY,
    FuzzTarget,
    PropertyViolation,
    as_text,
)
from l2session.testing.fuzz_targets._fixtures import ENCAPSULATOR, ReplayableEncapsulator
from l2session.testing.fuzz_targets.manager import Duo, packet_kind, rejected

#: Every target, layer by layer (the order the Hypothesis tests and
#: ``fuzz/make_corpus.py`` walk them in).
TARGETS: Final[tuple[FuzzTarget, ...]] = (
    *wire.TARGETS,
    *transports.TARGETS,
    *crypto.TARGETS,
    *identity.TARGETS,
    *session.TARGETS,
    *manager.TARGETS,
    *membrane.TARGETS,
)

#: The targets by name.
BY_NAME: Final[dict[str, FuzzTarget]] = {target.name: target for target in TARGETS}


def target(name: str) -> FuzzTarget:
    """The target called ``name`` (ConfigError listing the names if none)."""
    found = BY_NAME.get(name)
    if found is None:
        raise ConfigError(f"no fuzz target {name!r}; targets: {', '.join(BY_NAME)}")
    return found


__all__ = [
    "BY_NAME",
    "ENCAPSULATOR",
    "NOW",
    "POLICY",
    "TARGETS",
    "Duo",
    "FuzzTarget",
    "PropertyViolation",
    "ReplayableEncapsulator",
    "as_text",
    "packet_kind",
    "rejected",
    "target",
]
