"""The Membrane: capability policy, QVL trust scores, the hash-chained audit log.

Pure like the core (DESIGN.md §1): no I/O, no clock, no randomness; ``now``
is passed in.  docs/MEMBRANE.md describes the policy file, the trust model
and the audit chain.
"""
