"""The policy as a file and in plain language: shared by `truepipe policy` and the /policy/ page."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from truepipe.core.errors import InvalidInput
from truepipe.hygiene.models import PolicyVersion, Severity
from truepipe.hygiene.policy import Policy, current_policy
from truepipe.hygiene.rules import load_all


@dataclass(frozen=True)
class RuleLine:
    key: str
    title: str
    enabled: bool
    severity: int
    severity_label: str
    explanation: str
    params: dict[str, Any]


def rule_lines(policy: Policy | None = None) -> list[RuleLine]:
    """Every rule of the policy, enabled or not, explained with its parameters filled in."""
    policy = policy or current_policy()
    registry = load_all()
    lines = []
    for key, entry in sorted(policy.document["rules"].items()):
        if key not in registry:
            continue
        rule = registry[key](entry["params"], int(entry["severity"]))
        lines.append(
            RuleLine(
                key=key,
                title=rule.title,
                enabled=bool(entry.get("enabled", True)),
                severity=rule.severity,
                severity_label=Severity(rule.severity).label,
                explanation=rule.describe(),
                params=entry["params"],
            )
        )
    return lines


def export_text(policy: Policy | None = None) -> str:
    """The policy as JSON with its version number, keys sorted (stable diffs in version control)."""
    policy = policy or current_policy()
    return json.dumps({"version": policy.version, **policy.document}, indent=2, sort_keys=True) + "\n"


def parse_text(text: str | bytes) -> Any:
    """The JSON in a policy file, or InvalidInput saying where it stops being JSON."""
    try:
        return json.loads(text)
    except UnicodeDecodeError as exc:
        raise InvalidInput("The policy file is not UTF-8 text.") from exc
    except json.JSONDecodeError as exc:
        raise InvalidInput(
            f"The policy file is not JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}."
        ) from exc


def history() -> list[PolicyVersion]:
    return list(PolicyVersion.objects.select_related("created_by").order_by("-number"))
