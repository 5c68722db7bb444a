"""The rule registry: every hygiene rule truepipe knows, by key."""

from __future__ import annotations

from truepipe.hygiene.rules.base import Finding, Rule

REGISTRY: dict[str, type[Rule]] = {}


def register(rule: type[Rule]) -> type[Rule]:
    if rule.key in REGISTRY and REGISTRY[rule.key] is not rule:
        raise ValueError(f"Two rules share the key {rule.key!r}.")
    if not rule.key or ":" in rule.key:
        # Violation keys are "{rule}:{record}": with no colon in a rule's key, two rules' keys
        # never meet, which the night's look-up of live keys relies on (engine._insert_new_sql).
        raise ValueError(f"A rule key is a non-empty name without a colon, not {rule.key!r}.")
    REGISTRY[rule.key] = rule
    return rule


def load_all() -> dict[str, type[Rule]]:
    """Import the rule modules (each registers its rules) and return the registry."""
    from truepipe.hygiene.rules import activities, capture, deals, history, reps  # noqa: F401

    return REGISTRY


__all__ = ["REGISTRY", "Finding", "Rule", "load_all", "register"]
