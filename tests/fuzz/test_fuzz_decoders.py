"""Every decoder of untrusted bytes, fuzzed in the normal suite (issue 7).

The targets live in one registry, :mod:`l2session.testing.fuzz_targets`,
shared with the atheris scripts in ``fuzz/``.  Here each target gets two
Hypothesis strategies: its valid seeds damaged by
:func:`l2session.testing.fuzz.mutate` (to get past the first length check)
and raw random bytes (to hit the first checks themselves).  A target fails
on any exception that is not one of its typed refusals, and on a property
it checks itself (canonical re-encoding, state unchanged by a refusal).

"Every decoder" is held two ways: the registry must cover the modules the
issue lists, and an inventory of the source (functions named ``decode*``,
``from_bytes``, ``parse*``, ``unwrap``, ``read``, ``from_json`` and every
function that builds a ``codec.Reader``) must find each decoder either in a
target or in :data:`NOT_FUZZED` with the reason.  A new decoder without a
target fails :func:`test_every_decoder_in_the_source_has_a_target`.

Budget: the examples per target are divided by its ``cost``, so the module
runs in about 20 s on two cores.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from l2session.errors import ConfigError
from l2session.testing.fuzz import mutate, overwrite
from l2session.testing.fuzz_targets import BY_NAME, TARGETS, FuzzTarget, target

SOURCE = Path(__file__).resolve().parents[2] / "src" / "l2session"

#: Mutated-seed examples for a target of cost 1 (random bytes: a third).
MUTATED_EXAMPLES = 300
RANDOM_EXAMPLES = 100
MIN_EXAMPLES = 8

#: The decoder modules issue 7 names (and a few more found by grepping for
#: ``decode``, ``from_bytes`` and ``Reader(``): each needs a target.
REQUIRED_MODULES = (
    "l2session.wire.packets",
    "l2session.wire.records",
    "l2session.transports.framing",
    "l2session.transports.discovery_messages",
    "l2session.transports.discovery_wire",
    "l2session.transports.address",
    "l2session.crypto.handshake_messages",
    "l2session.crypto.ratchet_state",
    "l2session.crypto.ratchet",
    "l2session.crypto.prekey_records",
    "l2session.crypto.pqxdh",
    "l2session.identity.prekeys",
    "l2session.identity.bundle",
    "l2session.identity.did",
    "l2session.identity.base58",
    "l2session.identity.document",
    "l2session.identity.keyfile",
    "l2session.core.link.envelope",
    "l2session.core.lifecycle.resumption",
    "l2session.core.management.manager",
    "l2session.membrane.trust_statement",
    "l2session.membrane.policy_file",
    "l2session.membrane.audit",
    "l2session.runtime.directory",
)

#: Decoders the inventory finds that have no target of their own, and why.
NOT_FUZZED = {
    "l2session.core.lifecycle.persistence:Journal.load": "a Protocol; implemented in store/",
    "l2session.crypto.prekey_records:SignedPrekeySet.read": "inside prekey_bundle, prekey_store",
    "l2session.crypto.prekey_records:OneTimePrekey.read": "inside prekey_bundle, prekey_store",
    "l2session.runtime.policyfile:load_policy": "reads a file, then parse_policy (policy_file)",
    "l2session.cli.node_options:load_config": "the operator's own file, tomllib; its errors: "
    "tests/test_cli_operator_units.py",
    "l2session.runtime.policyfile:load_trust": "TrustStatement.from_bytes of stored statements",
    "l2session.store.keyfile:load_identity": "reads a file, then decode_identity (keyfile)",
    "l2session.store.memory:MemoryStore.load": "the node's own memory, not peer input",
    "l2session.store.sqlite:SqliteStore.load": "the node's own database (tests/store)",
    "l2session.store.schema:decode_batch": "the node's own database (tests/store/test_migration)",
    "l2session.store.sqlite:SqliteStore.load_identity": "decode_identity (keyfile)",
    "l2session.store.sqlite:SqliteStore.load_prekeys": "PrekeyStore.from_bytes (prekey_store)",
    "l2session.store.sqlite:SqliteStore.load_handshake_guard": "the node's own database",
    "l2session.testing.vectors.wire:from_json_fields": "a test helper, not product code",
    "l2session.bridges.base:load_bridge": "builds a bridge from the operator's configuration; "
    "the name is BridgeProtocol.parse (bridge_protocol)",
}

_DECODER_NAME = re.compile(r"^(decode|from_bytes|from_json|parse|unwrap|read|load)")


def _mutations(seeds: Sequence[bytes]) -> st.SearchStrategy[bytes]:
    @st.composite
    def mutated(draw: st.DrawFn) -> bytes:
        damage = draw(st.sampled_from([mutate, overwrite]))
        return damage(draw, draw(st.sampled_from(seeds)))

    return mutated()


def _examples(base: int, fuzz_target: FuzzTarget) -> int:
    return max(MIN_EXAMPLES, base // fuzz_target.cost)


def _fuzz(fuzz_target: FuzzTarget, strategy: st.SearchStrategy[bytes], examples: int) -> None:
    @settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(strategy)
    def run(data: bytes) -> None:
        fuzz_target.run(data)

    run()


@pytest.mark.parametrize("fuzz_target", TARGETS, ids=lambda t: t.name)
def test_mutated_seeds_raise_only_typed_errors(fuzz_target: FuzzTarget) -> None:
    strategy = _mutations(fuzz_target.seeds())
    _fuzz(fuzz_target, strategy, _examples(MUTATED_EXAMPLES, fuzz_target))


@pytest.mark.parametrize("fuzz_target", TARGETS, ids=lambda t: t.name)
def test_random_bytes_raise_only_typed_errors(fuzz_target: FuzzTarget) -> None:
    if fuzz_target.text:
        # Printable text reaches text decoders' grammar; raw bytes their
        # surrogate handling (see fuzz_targets.as_text).
        text = st.text(max_size=200).map(lambda s: s.encode("utf-8", "surrogatepass"))
        strategy = st.one_of(st.binary(max_size=fuzz_target.max_len), text)
    else:
        strategy = st.binary(max_size=min(fuzz_target.max_len, 2048))
    _fuzz(fuzz_target, strategy, _examples(RANDOM_EXAMPLES, fuzz_target))


@pytest.mark.parametrize("fuzz_target", TARGETS, ids=lambda t: t.name)
def test_first_seed_is_accepted(fuzz_target: FuzzTarget) -> None:
    """A seed that is refused teaches the fuzzer nothing about the code
    behind the refusal."""
    seeds = fuzz_target.seeds()
    assert seeds
    assert fuzz_target.check(seeds[0])
    assert all(len(seed) <= fuzz_target.max_len for seed in seeds)


def test_target_names_are_unique_and_looked_up() -> None:
    assert len(BY_NAME) == len(TARGETS)
    assert target("wire_packets") is BY_NAME["wire_packets"]
    with pytest.raises(ConfigError, match="wire_packets"):
        target("no such target")


def test_registry_covers_every_decoder_module_of_the_issue() -> None:
    covered = {entry.split(":")[0] for t in TARGETS for entry in t.entries}
    missing = sorted(set(REQUIRED_MODULES) - covered)
    assert not missing, f"decoder modules without a fuzz target: {missing}"


def inventory(source: str, module: str) -> list[str]:
    """``module:qualname`` of every decoder-like function in ``source``."""
    found: list[str] = []

    def uses_reader(node: ast.AST) -> bool:
        return any(
            isinstance(call, ast.Call)
            and isinstance(call.func, ast.Name)
            and call.func.id == "Reader"
            for call in ast.walk(node)
        )

    def walk(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                walk(child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                qualname = prefix + child.name
                public = not any(part.startswith("_") for part in qualname.split("."))
                if (public and _DECODER_NAME.match(child.name)) or uses_reader(child):
                    found.append(f"{module}:{qualname}")

    walk(ast.parse(source), "")
    return found


def _source_inventory() -> list[str]:
    found: list[str] = []
    for path in sorted(SOURCE.rglob("*.py")):
        module = ".".join(path.with_suffix("").relative_to(SOURCE.parent).parts)
        found.extend(inventory(path.read_text(encoding="utf-8"), module))
    return found


def test_inventory_finds_decoders_by_name_and_by_reader() -> None:
    source = (
        "def decode_thing(data): ...\n"
        "def _helper(data):\n    return Reader(data).u8('x')\n"
        "def _decode_private(data): ...\n"
        "class Thing:\n    @classmethod\n    def from_bytes(cls, data): ...\n"
        "def encode_thing(x): ...\n"
    )
    assert inventory(source, "m") == ["m:decode_thing", "m:_helper", "m:Thing.from_bytes"]


def test_every_decoder_in_the_source_has_a_target() -> None:
    fuzzed = {entry for t in TARGETS for entry in t.entries}
    found = _source_inventory()
    assert "l2session.wire.packets:decode_packet" in found  # the inventory works
    missing = [name for name in found if name not in fuzzed and name not in NOT_FUZZED]
    assert not missing, f"decoders without a fuzz target (add one, or to NOT_FUZZED): {missing}"
    stale = sorted(set(NOT_FUZZED) - set(found))
    assert not stale, f"NOT_FUZZED names decoders that no longer exist: {stale}"
