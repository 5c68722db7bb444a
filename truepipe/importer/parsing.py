"""Turning CSV cells into values. Each parser raises ValueError with a message for the user."""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache

from dateutil import parser as dateutil_parser
from django.utils import timezone

_NOT_A_DATE_HINT = re.compile(r"\d")
_MONEY_NOISE = re.compile(r"[\s$€£¥,]|^[A-Z]{3}\s*|\s*[A-Z]{3}$")


@lru_cache(maxsize=65536)
def _date(text: str, dayfirst: bool) -> date:
    if len(text) == 10 and text[4] == "-":
        try:
            return date.fromisoformat(text)
        except ValueError:
            pass
    parsed = _datetime_naive(text, dayfirst)
    return parsed.date()


@lru_cache(maxsize=65536)
def _datetime_naive(text: str, dayfirst: bool) -> datetime:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        pass
    if not _NOT_A_DATE_HINT.search(text):
        raise ValueError(f'"{text}" is not a date')
    try:
        return dateutil_parser.parse(text, dayfirst=dayfirst)
    except (ValueError, OverflowError):
        raise ValueError(f'"{text}" is not a date') from None


def parse_date(text: str, *, dayfirst: bool = False) -> date:
    """ISO 8601 first (fast), then the common US ("03/31/2024") and EU ("31.03.2024") forms."""
    try:
        return _date(text, dayfirst)
    except ValueError:
        raise ValueError(f'"{text}" is not a date') from None


def parse_datetime(text: str, *, dayfirst: bool = False) -> datetime:
    """A date and time; a bare date means midnight, a time without zone means the site's zone."""
    return _aware(text, dayfirst)


@lru_cache(maxsize=65536)
def _aware(text: str, dayfirst: bool) -> datetime:
    try:
        value = _datetime_naive(text, dayfirst)
    except ValueError:
        raise ValueError(f'"{text}" is not a date') from None
    return timezone.make_aware(value) if timezone.is_naive(value) else value


def parse_amount(text: str) -> Decimal:
    """'$1,234.50', '1234.5', 'USD 1234' -> Decimal. Currency symbols and thousands commas go."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        value = None
    cleaned = _MONEY_NOISE.sub("", text) if value is None else text
    try:
        value = Decimal(cleaned) if value is None else value
    except InvalidOperation:
        raise ValueError(f'"{text}" is not an amount') from None
    if not value.is_finite():
        raise ValueError(f'"{text}" is not an amount')
    return value


def parse_int(text: str) -> int:
    cleaned = text.replace(",", "").replace(" ", "")
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        raise ValueError(f'"{text}" is not a whole number') from None
    if not value.is_finite() or value != value.to_integral_value():
        raise ValueError(f'"{text}" is not a whole number')
    return int(value)


def parse_percent(text: str) -> int:
    """'55', '55%', '55.0' -> 55; '0.55' stays 0 (a fraction would be ambiguous, so we do not guess)."""
    cleaned = text.strip().rstrip("%").strip()
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        raise ValueError(f'"{text}" is not a percentage') from None
    if not value.is_finite() or not 0 <= value <= 100:
        raise ValueError(f'"{text}" is not a percentage from 0 to 100')
    return int(value.to_integral_value())


def split_list(text: str) -> list[str]:
    """'a@x.com; b@y.com' or 'a@x.com, b@y.com' -> ['a@x.com', 'b@y.com']."""
    return [part.strip() for part in re.split(r"[;,\n]", text) if part.strip()]
