"""SPEC-018 §2's Gherkin scenarios, executed against two real nodes."""
