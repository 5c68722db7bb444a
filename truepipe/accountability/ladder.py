"""The accountability section of the policy: when violations become an offense, and the ladder.

It lives in the same versioned policy document as the rules (section
``accountability``), so one version number covers everything a rep acknowledges.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

OWNERS = ("manager", "managers_manager", "admin")
OUTSIDE = ("finance", "hr")

DEFAULT_LADDER: list[dict[str, Any]] = [
    {
        "name": "Written warning and coaching conversation",
        "action": "warning",
        "deadline_days": 7,
        "owner": "manager",
        "notify": [],
        "hold_days": 0,
    },
    {
        "name": "Hold on reimbursement of phone, fuel and entertainment expenses",
        "action": "expense_hold",
        "deadline_days": 5,
        "owner": "manager",
        "notify": ["finance"],
        "hold_days": 30,
    },
    {
        "name": "Formal performance review (can lead to termination)",
        "action": "performance_review",
        "deadline_days": 10,
        "owner": "manager",
        "notify": ["hr"],
        "hold_days": 0,
    },
]

DEFAULT_ACCOUNTABILITY: dict[str, Any] = {
    # An offense: at least `min_unresolved` violations of severity `offense_severity` or higher
    # left open more than `grace_days` days, or a 7-day score below `weekly_score_below` (0: off).
    # At most one offense per rep and week.
    # (Calibrated on the demo: the rainmaker offends every week, the new hire only in his
    # first weeks, the meticulous logger and the steady all-rounder never.)
    "offense_severity": 3,
    "grace_days": 7,
    "min_unresolved": 3,
    "weekly_score_below": 30,
    # Repeat offenses are counted over this many days: the 1st, 2nd, 3rd... step of the ladder
    # (past its end, the last step again).
    "window_days": 90,
    # A rep may dispute an offense for this many days after it was found.
    "dispute_days": 7,
    # A manager with this many consequences escalated past their deadline in the window is
    # reported to their own manager as not enforcing the policy.
    "unenforced_report_after": 2,
    "ladder": DEFAULT_LADDER,
}


@dataclass(frozen=True)
class Step:
    level: int
    name: str
    action: str
    deadline_days: int
    owner: str
    notify: tuple[str, ...]
    hold_days: int


@dataclass(frozen=True)
class Accountability:
    offense_severity: int
    grace_days: int
    min_unresolved: int
    weekly_score_below: float
    window_days: int
    dispute_days: int
    unenforced_report_after: int
    ladder: tuple[Step, ...]

    def step(self, level: int) -> Step:
        """The ladder's step for a level (past the end, the last step)."""
        return self.ladder[min(level, len(self.ladder)) - 1]


def defaults() -> dict[str, Any]:
    return copy.deepcopy(DEFAULT_ACCOUNTABILITY)


def from_section(section: dict[str, Any]) -> Accountability:
    merged = defaults() | (section or {})
    return Accountability(
        offense_severity=int(merged["offense_severity"]),
        grace_days=int(merged["grace_days"]),
        min_unresolved=max(int(merged["min_unresolved"]), 1),
        weekly_score_below=float(merged["weekly_score_below"]),
        window_days=int(merged["window_days"]),
        dispute_days=int(merged["dispute_days"]),
        unenforced_report_after=int(merged["unenforced_report_after"]),
        ladder=tuple(
            Step(
                level=n,
                name=str(step["name"]),
                action=str(step.get("action") or "other"),
                deadline_days=int(step["deadline_days"]),
                owner=str(step.get("owner", "manager")),
                notify=tuple(step.get("notify", [])),
                hold_days=int(step.get("hold_days", 0)),
            )
            for n, step in enumerate(merged["ladder"], start=1)
        ),
    )


def section_errors(section: Any) -> dict[str, str]:
    """What is wrong with an `accountability` section, by dotted path (empty: nothing)."""
    if section is None:
        return {}
    if not isinstance(section, dict):
        return {"accountability": "Must be an object."}
    errors: dict[str, str] = {}
    known = DEFAULT_ACCOUNTABILITY
    for name, value in section.items():
        path = f"accountability.{name}"
        if name not in known:
            errors[path] = "No such setting."
        elif name == "ladder":
            errors |= _ladder_errors(value)
        elif isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 3650:
            errors[path] = f"Must be a number from 0 to 3650 (default {known[name]!r})."
    severity = section.get("offense_severity", 3)
    if "accountability.offense_severity" not in errors and severity not in (1, 2, 3):
        errors["accountability.offense_severity"] = "Must be 1 (low), 2 (medium) or 3 (high)."
    return errors


def _ladder_errors(ladder: Any) -> dict[str, str]:
    if not isinstance(ladder, list) or not ladder:
        return {"accountability.ladder": "Must be a list of one or more steps."}
    errors: dict[str, str] = {}
    for n, step in enumerate(ladder, start=1):
        path = f"accountability.ladder.{n}"
        if not isinstance(step, dict):
            errors[path] = "Each step is an object with name, action, deadline_days and owner."
            continue
        if not str(step.get("name") or "").strip():
            errors[f"{path}.name"] = "Say what the consequence is."
        days = step.get("deadline_days")
        if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 365:
            errors[f"{path}.deadline_days"] = "Whole days, from 1 to 365."
        if step.get("owner", "manager") not in OWNERS:
            errors[f"{path}.owner"] = f"One of {', '.join(OWNERS)}."
        notify = step.get("notify", [])
        if not isinstance(notify, list) or any(who not in OUTSIDE for who in notify):
            errors[f"{path}.notify"] = f"A list of {', '.join(OUTSIDE)}."
        hold = step.get("hold_days", 0)
        if isinstance(hold, bool) or not isinstance(hold, int) or not 0 <= hold <= 3650:
            errors[f"{path}.hold_days"] = "Whole days, from 0 to 3650."
        unknown = set(step) - {"name", "action", "deadline_days", "owner", "notify", "hold_days"}
        for name in sorted(unknown):
            errors[f"{path}.{name}"] = "No such setting."
    return errors
