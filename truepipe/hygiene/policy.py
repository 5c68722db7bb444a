"""The hygiene policy: which rules run, how severe each is, their parameters, and scoring.

The policy is a JSON document, versioned in `PolicyVersion`. Version 0 is the
built-in defaults; an admin publishes new versions from the policy page or
with `truepipe policy import FILE` (and `truepipe policy export` writes the
current one), so a policy can live in version control.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from django.db import connection, transaction

from truepipe.accountability.ladder import Accountability
from truepipe.accountability.ladder import defaults as accountability_defaults
from truepipe.accountability.ladder import from_section as accountability_from
from truepipe.accountability.ladder import section_errors as accountability_errors
from truepipe.audit import log as audit
from truepipe.core.errors import InvalidInput, NotAllowed
from truepipe.hygiene.models import PolicyVersion, Severity
from truepipe.hygiene.rules import Rule, load_all
from truepipe.people.models import Role

DEFAULT_SCORING: dict[str, Any] = {
    # Points a violation costs by severity (low, medium, high).
    "severity_points": {"1": 1, "2": 3, "3": 6},
    # What a rep could lose in a day: this many points per open deal, plus one rep-day allowance.
    "points_per_open_deal": 6,
    "points_per_rep_day": 6,
    # Deal-level violations weigh more on bigger deals: amount / median open amount, clamped.
    "value_weighting": True,
    "value_weight_min": 0.5,
    "value_weight_max": 2.0,
}
DEFAULT_SNOOZE: dict[str, Any] = {"max_days": 30, "max_active_per_rep": 10}
DEFAULT_QUEUE: dict[str, Any] = {"minutes": 15}


def default_document() -> dict[str, Any]:
    rules = load_all()
    return {
        "rules": {
            key: {
                "enabled": True,
                "severity": rule.default_severity,
                "params": copy.deepcopy(rule.default_params),
            }
            for key, rule in sorted(rules.items())
        },
        "scoring": copy.deepcopy(DEFAULT_SCORING),
        "snooze": copy.deepcopy(DEFAULT_SNOOZE),
        "queue": copy.deepcopy(DEFAULT_QUEUE),
        "accountability": accountability_defaults(),
    }


@dataclass(frozen=True)
class Policy:
    version: int
    document: dict[str, Any]

    @cached_property
    def rules(self) -> list[Rule]:
        """The enabled rules, instantiated with this policy's parameters and severities."""
        registry = load_all()
        result = []
        for key, entry in self.document["rules"].items():
            if entry.get("enabled", True) and key in registry:
                result.append(registry[key](entry["params"], int(entry["severity"])))
        return result

    def rule(self, key: str) -> Rule | None:
        return next((rule for rule in self.rules if rule.key == key), None)

    def section(self, name: str) -> dict[str, Any]:
        return self.document.get(name, {})

    @cached_property
    def accountability(self) -> Accountability:
        """When violations become an offense, and the ladder of consequences."""
        return accountability_from(self.section("accountability"))


def _merge(defaults: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """The given document over the defaults: rules added since it was written get their defaults."""
    merged = copy.deepcopy(defaults)
    for section in ("scoring", "snooze", "queue", "accountability"):
        merged[section].update(given.get(section, {}))
    for key, entry in given.get("rules", {}).items():
        if key in merged["rules"]:
            target = merged["rules"][key]
            target["enabled"] = entry.get("enabled", target["enabled"])
            target["severity"] = entry.get("severity", target["severity"])
            target["params"].update(entry.get("params", {}))
    return merged


# Keyed by (number, row id): a publish that rolled back leaves its number free for the next one.
_cache: dict[tuple[Any, ...], Policy] = {}


def current_policy() -> Policy:
    """The latest published policy (version 0, the defaults, if none was ever published).

    Every write evaluates its deal under the current policy, so the parsed policy
    is kept per version: one small query per call finds it. The key holds the row's creation
    time too, because a rolled-back publish can free a number and id (SQLite reuses them) that
    the next publish then takes with another document.
    """
    with connection.cursor() as cursor:  # raw: every write runs this
        cursor.execute(
            "SELECT number, id, created_at FROM hygiene_policyversion ORDER BY number DESC LIMIT 1"
        )
        row = cursor.fetchone()
    latest = (row[0], row[1], str(row[2])) if row else (0, 0, "")
    if latest not in _cache:
        if row is None:
            _cache[latest] = Policy(0, default_document())
        else:
            document = PolicyVersion.objects.get(pk=latest[1]).document
            _cache[latest] = Policy(latest[0], _merge(default_document(), document))
    return _cache[latest]


def validate_document(document: Any) -> dict[str, Any]:
    """Check a policy document against the rules truepipe knows; raise InvalidInput naming each problem."""
    if not isinstance(document, dict):
        raise InvalidInput(
            "A policy is a JSON object with 'rules', 'scoring', 'snooze', 'queue' and 'accountability'."
        )
    defaults = default_document()
    errors: dict[str, str] = {}
    unknown_sections = set(document) - set(defaults) - {"version", "note"}
    for name in sorted(unknown_sections):
        errors[name] = "Unknown section."
    for key, entry in (document.get("rules") or {}).items():
        if key not in defaults["rules"]:
            errors[f"rules.{key}"] = "No such rule."
            continue
        if not isinstance(entry, dict):
            errors[f"rules.{key}"] = "Must be an object with enabled, severity and params."
            continue
        severity = entry.get("severity", 2)
        if severity not in Severity.values:
            errors[f"rules.{key}.severity"] = "Must be 1 (low), 2 (medium) or 3 (high)."
        if not isinstance(entry.get("enabled", True), bool):
            errors[f"rules.{key}.enabled"] = "Must be true or false."
        known = defaults["rules"][key]["params"]
        for name, value in (entry.get("params") or {}).items():
            if name not in known:
                errors[f"rules.{key}.params.{name}"] = "No such parameter."
            elif not _same_shape(known[name], value):
                errors[f"rules.{key}.params.{name}"] = f"Must look like the default ({known[name]!r})."
    errors |= accountability_errors(document.get("accountability"))
    for section in ("scoring", "snooze", "queue"):
        for name, value in (document.get(section) or {}).items():
            if name not in defaults[section]:
                errors[f"{section}.{name}"] = "No such setting."
            elif not _same_shape(defaults[section][name], value):
                errors[f"{section}.{name}"] = f"Must look like the default ({defaults[section][name]!r})."
    if errors:
        first = next(iter(errors.items()))
        raise InvalidInput(
            f"The policy has {len(errors)} problem(s), first {first[0]}: {first[1]}", fields=errors
        )
    return _merge(defaults, document)


def _same_shape(default: Any, value: Any) -> bool:
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int | float):
        return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0
    if isinstance(default, dict):
        return isinstance(value, dict) and all(
            _same_shape(next(iter(default.values()), 0), v) for v in value.values()
        )
    if isinstance(default, list):
        return isinstance(value, list)
    return isinstance(value, type(default))


def publish_policy(actor, document: Any, *, note: str = "") -> PolicyVersion:
    """Validate and publish a new policy version (admins only; actor None is the system)."""
    if actor is not None:
        profile = getattr(actor, "profile", None)
        if not (actor.is_superuser or (profile is not None and profile.role == Role.ADMIN)):
            raise NotAllowed("Only an admin can change the hygiene policy.")
    merged = validate_document(document)
    with transaction.atomic():
        latest = PolicyVersion.objects.select_for_update().order_by("-number").first()
        number = (latest.number if latest else 0) + 1
        version = PolicyVersion.objects.create(
            number=number, document=merged, note=note[:255], created_by=actor if actor else None
        )
        # The document's digest: what exactly was published, checkable against an exported file.
        digest = hashlib.sha256(json.dumps(merged, sort_keys=True).encode()).hexdigest()
        audit.record(
            actor, "policy.published", version, {"number": number, "note": note[:255], "sha256": digest}
        )
        return version
