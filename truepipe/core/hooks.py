"""Extension points the service layer calls inside its transaction.

Later parts of truepipe (rule evaluation, notifications) register here, so
every entry point (form, board, API, import, bulk, capture) triggers them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class WriteEvent:
    kind: str  # "opportunity", "account", "contact", "activity"
    action: str  # "create", "update", "delete"
    object_ids: list[int]
    changed_fields: frozenset[str]
    actor_id: int | None
    via: str
    at: datetime
    extra: dict[str, Any] = field(default_factory=dict)


_listeners: list[Callable[[WriteEvent], None]] = []


def on_write(listener: Callable[[WriteEvent], None]) -> Callable[[WriteEvent], None]:
    """Register a listener (usable as a decorator). Listeners run inside the write's transaction."""
    if listener not in _listeners:
        _listeners.append(listener)
    return listener


def emit(event: WriteEvent) -> None:
    for listener in list(_listeners):
        listener(event)
