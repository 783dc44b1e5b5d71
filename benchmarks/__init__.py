"""Standalone benchmarks (each runs as a script; see the README)."""
