"""Read one line a rep types into a Proposal: which deal, and what changes on it.

    acme renewal 48k close mar 14 proposal next: send SOW friday

The parts of a line, in any order:

- `close <date>` (also `closes`, `closing`, `close date`, `close by`): the close date;
- an amount: `48k`, `$48,000`, `1.2m`, `48 000 EUR`; a currency code or sign also sets the deal's
  currency. A bare number counts only from 1000 up and when it is not a year (`acme 2026 renewal`);
- a stage by its name, case-insensitive, or the unique start of one (`neg`); `won`; `lost: <reason>`;
- `next: <text> <date>`: the next step is the text up to a date phrase, the date is its date; what
  follows the date is read as more parts (`next: send SOW friday close mar 14`);
- `new` first: a new deal on the account the words name;
- every other word names the deal: its account (name or domain) and words of its name.

Dates: month names, weekdays and relative phrases (`tomorrow`, `in 2 weeks`, `next week`) are read by
dateparser relative to the rep's own local time (SalesProfile.time_zone), preferring the future; `end of
month|quarter|year`, `eoq`, `q3` (calendar quarters) and numeric `14/3`, `3/14/2026` are read here
(dateparser reads `3/14` as a year under a day-first order), numeric ones day-first when
TRUEPIPE_DAY_FIRST is set.

Honesty rules. Nothing is guessed: several deals for the words, an ambiguous stage prefix, `next
friday` said early in the week, `jan 10` said on Jan 14 or `48.000` become a Question with its
choices. A word nothing explains is reported in `unknown`. A reading that cannot be right (a close
date in the past for an open deal, two amounts in one line) is a `problem`. This module never writes.
"""

from __future__ import annotations

import calendar
import datetime as dt
import difflib
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import dateparser
from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from truepipe.accounts.models import Account
from truepipe.core.errors import InvalidInput
from truepipe.core.visibility import visible
from truepipe.pipeline.models import Opportunity, Stage, StageKind

MAX_LINE = 500
# Deals fetched for the words of one line; a question never lists more than MAX_CHOICES of them.
CANDIDATES_MAX = 200
MAX_CHOICES = 10
# An unyeared date that fell this many days ago or fewer is asked about, not moved to next year.
ROLLOVER_DAYS = 60
EXAMPLE = "acme renewal 48k close mar 14 proposal next: send SOW friday"


# --- what a parse produces ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Choice:
    value: str
    label: str


@dataclass
class Question:
    """Something the line leaves open; answered by choices[key] = one of the choices' values."""

    key: str
    text: str
    choices: list[Choice]


@dataclass
class NewDeal:
    account: Account
    name: str


@dataclass
class Proposal:
    """The changes a line means for one deal (or a new one), and what stands in the way."""

    line: str
    choices: dict[str, str]
    today: dt.date
    deal: Opportunity | None = None
    new_deal: NewDeal | None = None
    version: int | None = None
    changes: dict[str, Any] = field(default_factory=dict)
    questions: list[Question] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    # How phrases were read ("“mar 14” → Sat 14 Mar 2026"), shown so a rep can check them.
    readings: list[str] = field(default_factory=list)


class LineNotUnderstood(InvalidInput):
    """The line cannot become a proposal: it is empty, or no deal (or account) fits its words."""


# --- words -------------------------------------------------------------------------------------------

_STRIP = ' \t,;!?()[]{}"“”‘’«»'


@dataclass
class Tok:
    raw: str  # as typed, without surrounding punctuation
    norm: str  # lower case, for matching
    index: int  # position in the line, to report unknown words in order
    colon: bool = False  # typed with a trailing colon ("next:", "lost:")


def tokenize(text: str) -> list[Tok]:
    text = re.sub(r"(?i)\bnext\s+step\s*:", "next:", text)
    text = re.sub(r"(?i)\b(next|lost|close)\s*:\s*", r"\1: ", text)
    toks = []
    for index, piece in enumerate(text.split()):
        raw = piece.strip(_STRIP)
        colon = raw.endswith(":") and len(raw) > 1
        raw = raw.rstrip(":") if colon else raw
        norm = raw.lower().rstrip(".") or raw.lower()
        norm = re.sub(r"['’]s$", "", norm)
        toks.append(Tok(raw=raw, norm=norm, index=index, colon=colon))
    return [tok for tok in toks if tok.raw]


CLOSE_WORDS = frozenset({"close", "closes", "closing", "closedate", "close-date"})
CLOSE_SKIP = frozenset({"date", "on", "by", "is", "at", "around", "~"})
DATE_PREPS = frozenset({"by", "on", "due", "before", "until", "till"})
# Words that join the parts of a line and name nothing.
FILLERS = frozenset(
    "to at for is now the deal opp opportunity amount stage set moved move moving and of with "
    "update updated please - — – & @ + = : -> → |".split()
)
CURRENCY_SIGNS = {"$": "USD", "€": "EUR", "£": "GBP"}
CURRENCY_CODES = frozenset(
    "usd eur gbp chf cad aud nzd jpy sek nok dkk pln czk huf inr brl mxn sgd hkd cny zar".split()
)
WEEKDAYS = {
    **dict.fromkeys(("mon", "monday"), 0),
    **dict.fromkeys(("tue", "tues", "tuesday"), 1),
    **dict.fromkeys(("wed", "weds", "wednesday"), 2),
    **dict.fromkeys(("thu", "thur", "thurs", "thursday"), 3),
    **dict.fromkeys(("fri", "friday"), 4),
    **dict.fromkeys(("sat", "saturday"), 5),
    **dict.fromkeys(("sun", "sunday"), 6),
}
MONTHS = {
    name: number
    for number, names in enumerate(
        [
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ],
        start=1,
    )
    for name in names
}
NUMBER_WORDS = {
    "a": 1,
    "an": 1,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
}
UNITS = {
    **dict.fromkeys(("day", "days"), "days"),
    **dict.fromkeys(("week", "weeks", "wk", "wks"), "weeks"),
    **dict.fromkeys(("month", "months", "mo", "mos"), "months"),
    **dict.fromkeys(("year", "years", "yr", "yrs"), "years"),
}
ORDINAL = re.compile(r"^(\d{1,2})(?:st|nd|rd|th)?$")
YEAR = re.compile(r"^(?:19|20)\d{2}$")
QUARTER = re.compile(r"^q([1-4])$")
NUMERIC_DATE = re.compile(r"^(\d{1,2})/(\d{1,2})(?:/(\d{2}|\d{4}))?$|^(\d{1,2})\.(\d{1,2})\.(\d{2}|\d{4})$")
ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
AMOUNT = re.compile(r"^(?P<pre>[$€£])?(?P<num>\d[\d.,]*)(?P<suf>k|m|mm|mn|bn)?(?P<post>[$€£])?$")
SUFFIX = {"": 1, "k": 1_000, "m": 1_000_000, "mm": 1_000_000, "mn": 1_000_000, "bn": 1_000_000_000}


# --- the reading context -----------------------------------------------------------------------------


@dataclass
class Context:
    user: Any
    now: dt.datetime  # the rep's local wall-clock time, naive: dateparser's RELATIVE_BASE
    day_first: bool
    choices: dict[str, str]
    stages: list[Stage]

    @property
    def today(self) -> dt.date:
        return self.now.date()

    def answer(self, key: str, options: list[Choice]) -> str | None:
        """The chosen value for question `key` when it is one of `options`, else None."""
        value = self.choices.get(key)
        return value if value is not None and any(c.value == value for c in options) else None


def local_now(user: Any, now: dt.datetime | None = None) -> dt.datetime:
    """The user's wall-clock time (their profile's time zone), without tzinfo."""
    moment = now or timezone.now()
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    name = "UTC"
    profile = getattr(user, "profile", None) if user is not None else None
    if profile is not None and profile.time_zone:
        name = profile.time_zone
    try:
        zone: dt.tzinfo = ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        zone = dt.UTC
    return moment.astimezone(zone).replace(tzinfo=None)


def day_first_default() -> bool:
    return bool(getattr(settings, "TRUEPIPE_DAY_FIRST", False))


# --- dates -------------------------------------------------------------------------------------------


@dataclass
class DateReading:
    text: str
    end: int  # index (in the token list) after the phrase
    date: dt.date
    # "" when plain; "next-weekday" (this week's or next week's?) or "rollover" (this year's date
    # has just passed: next year's, or a mistake?), with the other date in `other`.
    kind: str = ""
    other: dt.date | None = None


def _dateparser(phrase: str, ctx: Context) -> dt.date | None:
    parsed = dateparser.parse(
        phrase,
        languages=["en"],
        settings={
            "RELATIVE_BASE": ctx.now,
            "PREFER_DATES_FROM": "future",
            "RETURN_AS_TIMEZONE_AWARE": False,
            "DATE_ORDER": "DMY" if ctx.day_first else "MDY",
        },
    )
    return parsed.date() if parsed else None


def _safe_date(year: int, month: int, day: int) -> dt.date | None:
    try:
        return dt.date(year, month, day)
    except ValueError:
        return None


def _unyeared(month: int, day: int, ctx: Context) -> tuple[dt.date, str, dt.date | None] | None:
    """The next `month`/`day` from today; a date that passed only recently is flagged."""
    this_year = _safe_date(ctx.today.year, month, day)
    if this_year is None and (month, day) != (2, 29):
        return None
    if this_year is not None and this_year >= ctx.today:
        return this_year, "", None
    year = ctx.today.year + 1
    following = _safe_date(year, month, day)
    while following is None:  # 29 February
        year += 1
        following = _safe_date(year, month, day)
    if this_year is not None and (ctx.today - this_year).days <= ROLLOVER_DAYS:
        return following, "rollover", this_year
    return following, "", None


def _period_end(unit: str, today: dt.date, ahead: int) -> dt.date:
    if unit == "month":
        month = today.month - 1 + ahead
        year, month = today.year + month // 12, month % 12 + 1
        return dt.date(year, month, calendar.monthrange(year, month)[1])
    if unit == "quarter":
        quarter = (today.month - 1) // 3 + ahead
        year, quarter = today.year + quarter // 4, quarter % 4
        month = quarter * 3 + 3
        return dt.date(year, month, calendar.monthrange(year, month)[1])
    return dt.date(today.year + ahead, 12, 31)


def _quarter_end(quarter: int, year: int | None, today: dt.date) -> dt.date:
    month = quarter * 3
    end = dt.date(year or today.year, month, calendar.monthrange(year or today.year, month)[1])
    if year is None and end < today:
        end = end.replace(year=today.year + 1)
    return end


def match_date(toks: list[Tok], i: int, ctx: Context) -> DateReading | None:
    """A date phrase starting at toks[i], or None. Only the phrases listed here start a date, so
    words such as "march report" stay text."""
    if i >= len(toks):
        return None

    def word(k: int) -> str:
        return toks[i + k].norm if i + k < len(toks) else ""

    def reading(length: int, date: dt.date | None, kind: str = "", other: dt.date | None = None):
        if date is None:
            return None
        text = " ".join(tok.raw for tok in toks[i : i + length])
        return DateReading(text=text, end=i + length, date=date, kind=kind, other=other)

    w = word(0)
    # end of (the) (next|this) month / quarter / year / q3
    if w == "end" and word(1) == "of":
        k = 3 if word(2) == "the" else 2
        ahead = 0
        if word(k) in ("next", "this"):
            ahead = 1 if word(k) == "next" else 0
            k += 1
        if word(k) in ("month", "quarter", "year"):
            return reading(k + 1, _period_end(word(k), ctx.today, ahead))
        quarter = QUARTER.match(word(k))
        if quarter:
            year = int(word(k + 1)) if YEAR.match(word(k + 1)) else None
            return reading(k + 2 if year else k + 1, _quarter_end(int(quarter[1]), year, ctx.today))
        return None
    if w in ("eom", "eoq", "eoy"):
        return reading(1, _period_end({"eom": "month", "eoq": "quarter", "eoy": "year"}[w], ctx.today, 0))
    quarter = QUARTER.match(w)
    if quarter:
        year = int(word(1)) if YEAR.match(word(1)) else None
        return reading(2 if year else 1, _quarter_end(int(quarter[1]), year, ctx.today))
    if w in ("today", "tonight", "eod"):
        return reading(1, ctx.today)
    if w in ("tomorrow", "tmrw", "tmr", "tmw"):
        return reading(1, ctx.today + dt.timedelta(days=1))
    if w == "yesterday":
        return reading(1, ctx.today - dt.timedelta(days=1))
    if w in ("next", "this") and word(1) in WEEKDAYS:
        ahead = (WEEKDAYS[word(1)] - ctx.today.weekday()) % 7
        if w == "this":
            return reading(2, ctx.today + dt.timedelta(days=ahead))
        coming = ctx.today + dt.timedelta(days=ahead or 7)
        if coming.isocalendar()[:2] == ctx.today.isocalendar()[:2]:
            # Said on a Tuesday, "next friday" is this week's for some people, next week's for others.
            return reading(2, coming, "next-weekday", coming + dt.timedelta(days=7))
        return reading(2, coming)
    if w == "next" and word(1) in ("week", "month", "year"):
        return reading(2, _dateparser(f"next {word(1)}", ctx))
    if w in WEEKDAYS:
        names = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
        return reading(1, _dateparser(names[WEEKDAYS[w]], ctx))
    if w == "in" and (word(1).isdigit() or word(1) in NUMBER_WORDS) and word(2) in UNITS:
        count = int(word(1)) if word(1).isdigit() else NUMBER_WORDS[word(1)]
        if 0 < count <= 120:
            return reading(3, _dateparser(f"in {count} {UNITS[word(2)]}", ctx))
        return None
    if ISO_DATE.match(w):
        try:
            return reading(1, dt.date.fromisoformat(w))
        except ValueError:
            return None
    numeric = NUMERIC_DATE.match(w)
    if numeric:
        return _numeric_date(toks, i, numeric, ctx)
    # mar 14 (2027) / 14 march (2027) / march 14th
    month = day = None
    if w in MONTHS and ORDINAL.match(word(1)):
        month, day, length = MONTHS[w], int(ORDINAL.match(word(1))[1]), 2  # type: ignore[index]
    elif ORDINAL.match(w) and word(1) in MONTHS:
        month, day, length = MONTHS[word(1)], int(ORDINAL.match(w)[1]), 2  # type: ignore[index]
    if month is None or day is None:
        return None
    if YEAR.match(word(length)):
        parsed = _dateparser(f"{day} {calendar.month_name[month]} {word(length)}", ctx)
        return reading(length + 1, parsed)
    parsed = _dateparser(f"{day} {calendar.month_name[month]}", ctx)
    found = _unyeared(month, day, ctx)
    if parsed is not None and found is not None and found[0] == parsed:
        # dateparser's date (the next one); the rollover rule adds whether to ask about it.
        return reading(length, parsed, found[1], found[2])
    return reading(length, parsed)


def _numeric_date(toks: list[Tok], i: int, match: re.Match, ctx: Context) -> DateReading | None:
    first, second, year_text = (match[1], match[2], match[3]) if match[1] else (match[4], match[5], match[6])
    a, b = int(first), int(second)
    # Day-first (14/3) or month-first (3/14) as configured; the other order only when it is the
    # only one that makes a date.
    orders = [(a, b), (b, a)] if ctx.day_first else [(b, a), (a, b)]
    text = toks[i].raw
    for day, month in orders:
        if not (1 <= month <= 12 and 1 <= day <= 31):
            continue
        if year_text:
            year = int(year_text) + (2000 if len(year_text) == 2 else 0)
            date = _safe_date(year, month, day)
            if date:
                return DateReading(text=text, end=i + 1, date=date)
            continue
        found = _unyeared(month, day, ctx)
        if found:
            return DateReading(text=text, end=i + 1, date=found[0], kind=found[1], other=found[2])
    return None


def format_date(value: dt.date) -> str:
    return f"{value:%a} {value.day} {value:%b %Y}"


# --- amounts -----------------------------------------------------------------------------------------


@dataclass
class AmountReading:
    text: str
    end: int
    values: list[Decimal]  # one, or two when "48.000" could be 48,000 or 48
    currency: str | None


def _number(num: str, suffix: str) -> list[Decimal] | None:
    if re.fullmatch(r"\d{1,3}(,\d{3})+(\.\d+)?", num):
        return [Decimal(num.replace(",", ""))]
    if re.fullmatch(r"\d{1,3}(\.\d{3}){2,}(,\d+)?", num):
        return [Decimal(num.replace(".", "").replace(",", "."))]
    if not suffix and re.fullmatch(r"\d{1,3}\.\d{3}", num):
        return [Decimal(num.replace(".", "")), Decimal(num)]
    if re.fullmatch(r"\d+,\d{1,2}", num):
        return [Decimal(num.replace(",", "."))]
    if re.fullmatch(r"\d+(\.\d+)?", num):
        return [Decimal(num)]
    return None


def match_amount(toks: list[Tok], i: int) -> AmountReading | None:
    currency = None
    j = i
    if toks[i].norm in CURRENCY_CODES and i + 1 < len(toks) and AMOUNT.match(toks[i + 1].norm):
        currency, j = toks[i].norm.upper(), i + 1
    match = AMOUNT.match(toks[j].norm)
    if not match:
        return None
    num, suffix = match["num"], match["suf"] or ""
    sign = match["pre"] or match["post"]
    if sign:
        currency = currency or CURRENCY_SIGNS[sign]
    strong = bool(sign or suffix or currency or "," in num)
    end = j + 1
    if not suffix and not match["post"] and re.fullmatch(r"\d{1,3}", num):
        k = end
        while k < len(toks) and re.fullmatch(r"\d{3}", toks[k].norm):
            k += 1
        if k > end:  # "48 000", "1 200 000"
            num += "".join(tok.norm for tok in toks[end:k])
            end, strong = k, True
    if currency is None and end < len(toks) and toks[end].norm in CURRENCY_CODES:
        currency, end, strong = toks[end].norm.upper(), end + 1, True
    values = _number(num, suffix)
    if values is None:
        return None
    if not strong and len(values) == 1:
        value = values[0]
        # A bare number is an amount only when big and not a year: "acme 2026 renewal" names a deal.
        if value != value.to_integral() or value < 1000 or 1900 <= value <= 2100:
            return None
    values = [value * SUFFIX[suffix] for value in values]
    text = " ".join(tok.raw for tok in toks[i:end])
    return AmountReading(text=text, end=end, values=values, currency=currency)


def format_amount(value: Decimal | None, currency: str = "") -> str:
    if value is None:
        return "—"
    number = f"{value:,.0f}" if value == value.to_integral() else f"{value:,.2f}"
    return f"{currency} {number}".strip()


# --- stages ------------------------------------------------------------------------------------------


def match_stage(toks: list[Tok], i: int, stages: list[Stage]) -> tuple[int, list[Stage]] | None:
    """A stage named at toks[i]: its full name (any case), or the unique start of one (3+ letters)."""
    for stage in sorted(stages, key=lambda s: -len(s.name.split())):
        words = stage.name.lower().split()
        if [tok.norm for tok in toks[i : i + len(words)]] == words:
            return i + len(words), [stage]
    w = toks[i].norm
    if len(w) >= 3 and w.isalpha():
        hits = [
            s for s in stages if s.name.lower().startswith(w) or s.name.lower().replace(" ", "").startswith(w)
        ]
        if hits:
            return i + 1, hits
    return None


def _kind_stages(kind: str, stages: list[Stage]) -> list[Stage]:
    of_kind = [s for s in stages if s.kind == kind]
    named = [s for s in of_kind if s.name.lower() in (kind, f"closed {kind}")]
    return named[:1] or of_kind


# --- reading the line into claims --------------------------------------------------------------------


@dataclass
class Claims:
    """What the words of a line claim, before the deal is known."""

    is_new: bool = False
    deal_words: list[Tok] = field(default_factory=list)
    amounts: list[AmountReading] = field(default_factory=list)
    currencies: list[str] = field(default_factory=list)
    close: list[DateReading] = field(default_factory=list)
    next_dates: list[DateReading] = field(default_factory=list)
    loose_dates: list[DateReading] = field(default_factory=list)
    stages: list[tuple[str, list[Stage]]] = field(default_factory=list)
    lost_reason: str | None = None
    next_text: str | None = None
    unknown: list[tuple[int, str]] = field(default_factory=list)


def _read_parts(toks: list[Tok], claims: Claims, ctx: Context) -> None:
    i = 0
    while i < len(toks):
        tok, w = toks[i], toks[i].norm
        if w == "new" and tok.index == 0:
            claims.is_new = True
            i += 1
            continue
        if w in CLOSE_WORDS:
            j = i + 1
            while j < len(toks) and toks[j].norm in CLOSE_SKIP:
                j += 1
            date = match_date(toks, j, ctx)
            if date:
                claims.close.append(date)
                i = date.end
            else:
                claims.unknown.append((tok.index, f"{tok.raw} (no date after it)"))
                i += 1
            continue
        if w == "closed" and i + 1 < len(toks) and toks[i + 1].norm in ("won", "lost"):
            i += 1
            tok, w = toks[i], toks[i].norm
        if w == "won":
            claims.stages.append((tok.raw, _kind_stages(StageKind.WON, ctx.stages)))
            i += 1
            continue
        if w == "lost":
            claims.stages.append((tok.raw, _kind_stages(StageKind.LOST, ctx.stages)))
            j = i + 1
            if not tok.colon and j < len(toks) and toks[j].norm in (":", "-", "—", "–"):
                j += 1
            if tok.colon or j > i + 1:
                reason = " ".join(t.raw for t in toks[j:]).strip()
                if reason:
                    claims.lost_reason = reason
                i = len(toks)
            else:
                i = j
            continue
        amount = match_amount(toks, i)
        if amount:
            claims.amounts.append(amount)
            i = amount.end
            continue
        # The line starts with the deal: its first word names it even when it looks like a stage
        # ("prospect labs 20k" is about the account Prospect Labs).
        opening = tok.index == (1 if claims.is_new else 0)
        stage = None if opening else match_stage(toks, i, ctx.stages)
        if stage:
            end, options = stage
            claims.stages.append((" ".join(t.raw for t in toks[i:end]), options))
            i = end
            continue
        date = match_date(toks, i, ctx)
        if date:
            claims.loose_dates.append(date)
            i = date.end
            continue
        if w in FILLERS or re.fullmatch(r"[-–—→=>.,;:|/&+*#~]+", w):
            i += 1
            continue
        if w in CURRENCY_CODES:
            claims.currencies.append(w.upper())
            i += 1
            continue
        claims.deal_words.append(tok)
        i += 1


def _read_next_step(toks: list[Tok], next_tok: Tok, claims: Claims, ctx: Context) -> list[Tok]:
    """`next: <text> <date>`: the text up to a date phrase (or a close keyword); returns the words
    after that, which are read as more parts of the line."""
    text: list[Tok] = []
    rest: list[Tok] = []
    i = 0
    while i < len(toks):
        if toks[i].norm in CLOSE_WORDS:
            rest = toks[i:]
            break
        start = i + 1 if toks[i].norm in DATE_PREPS else i
        date = match_date(toks, start, ctx)
        if date:
            if start > i:
                date.text = f"{toks[i].raw} {date.text}"
            claims.next_dates.append(date)
            rest = toks[date.end :]
            break
        text.append(toks[i])
        i += 1
    words = " ".join(tok.raw for tok in text).strip(" -–—,;")
    if words:
        claims.next_text = words
    if not words and not claims.next_dates:
        claims.unknown.append((next_tok.index, "next: (nothing after it)"))
    return rest


# --- resolving the deal ------------------------------------------------------------------------------


def _words_of(text: str) -> set[str]:
    return {part for part in re.split(r"[^\w]+", text.lower()) if part}


def _domain_words(domains: list[str]) -> set[str]:
    words: set[str] = set()
    for domain in domains:
        domain = domain.lower().removeprefix("www.")
        words.add(domain)  # "acme.example" said in full
        labels = domain.split(".")
        words.update(label for label in labels[:-1] if label and label != "www")
    return words


def _strength(word: str, targets: set[str]) -> tuple[int, str]:
    """3 exact, 2 start of a word (3+ letters), 1 a near miss (a typo), 0 nothing; and the word hit."""
    if word in targets:
        return 3, word
    if len(word) >= 3:
        for target in sorted(targets):
            if target.startswith(word):
                return 2, target
    if len(word) >= 4:
        best = max(
            ((difflib.SequenceMatcher(None, word, t).ratio(), t) for t in targets if len(t) >= 4),
            default=(0.0, ""),
        )
        if best[0] >= 0.8:
            return 1, best[1]
    return 0, ""


def keyword_hint(word: str, stages: list[Stage]) -> str | None:
    """The keyword a word not understood is probably a typo of ("clsoe" -> "close"): said back as a
    hint, never acted on."""
    if word == "next":
        return "next:"
    if len(word) < 3:
        return None
    for keyword in ("close", "next:", "lost", "won", "new", *(s.name.lower() for s in stages)):
        bare = keyword.rstrip(":")
        if word == bare or " " in bare:
            continue
        if sorted(word) == sorted(bare) or difflib.SequenceMatcher(None, word, bare).ratio() >= 0.75:
            return keyword
    return None


def _fragments(words: list[str]) -> list[str]:
    # The first three letters find a word in the database even with a typo further on.
    return sorted({w[:3] for w in words if len(w) >= 2})


def _deal_label(deal: Opportunity) -> str:
    parts = [deal.name]
    if deal.account:
        parts.append(deal.account.name)
    parts.append(deal.stage.name)
    if deal.amount is not None:
        parts.append(format_amount(deal.amount, deal.currency))
    if deal.close_date:
        parts.append(f"closes {format_date(deal.close_date)}")
    parts.append(deal.owner.get_full_name() or deal.owner.username)
    return " · ".join(parts)


@dataclass
class _Scored:
    deal: Opportunity
    strengths: list[int]
    hits: list[str]
    name_hit: bool  # a word matched the deal's own name, not only its account

    @property
    def key(self) -> tuple[int, int]:
        return (sum(1 for s in self.strengths if s), sum(1 for s in self.strengths if s >= 2))


def _resolve_deal(proposal: Proposal, words: list[Tok], ctx: Context) -> set[int]:
    """Find the deal the words name among those the user may change. Returns the indexes of the
    words that were used; raises LineNotUnderstood when nothing fits."""
    norms = [tok.norm for tok in words]
    said = " ".join(tok.raw for tok in words)
    fragments = _fragments(norms)
    condition = Q()
    for fragment in fragments:
        condition |= (
            Q(name__icontains=fragment)
            | Q(account__name__icontains=fragment)
            | Q(account__domains__domain__icontains=fragment)
        )
    candidates: list[Opportunity] = []
    if fragments:
        candidates = list(
            visible(ctx.user, Opportunity, "change")
            .filter(condition)
            .select_related("account", "stage", "owner")
            .prefetch_related("account__domains")
            .distinct()
            .order_by("-updated_at", "-id")[:CANDIDATES_MAX]
        )
    scored = []
    for deal in candidates:
        account_words = (
            _words_of(deal.account.name) | _domain_words([d.domain for d in deal.account.domains.all()])
            if deal.account
            else set()
        )
        own_words = _words_of(deal.name) - account_words
        results = [_strength(word, own_words | account_words) for word in norms]
        name_hit = any(s and hit in own_words for s, hit in results)
        scored.append(_Scored(deal, [s for s, _ in results], [hit for _, hit in results], name_hit))
    scored = [s for s in scored if s.key[0]]
    if not scored:
        raise LineNotUnderstood(_no_deal_message(said, words, ctx))
    best = max(s.key for s in scored)
    top = [s for s in scored if s.key == best]
    # Open deals first; a closed deal only when the words name it, not just its account.
    open_top = [s for s in top if s.deal.stage.kind == StageKind.OPEN]
    top = open_top or [s for s in top if s.name_hit]
    unmatched = [
        said_word
        for said_word, *hits in zip(norms, *(s.strengths for s in top), strict=True)
        if not any(hits)
    ]
    typos = [word for word in unmatched if keyword_hint(word, ctx.stages)]
    if top and unmatched and len(typos) < len(unmatched) and not any(s.name_hit for s in top):
        # The words name an account but the rest names none of its deals: a deal not in truepipe yet.
        account = top[0].deal.account
        where = f"{account.name} has no deal of yours" if account else "No deal you can change"
        raise LineNotUnderstood(
            f"{where} matching “{' '.join(unmatched)}”. To create it, start the line with “new”: "
            f"new {proposal.line}"
        )
    if not top:
        account = scored[0].deal.account
        where = f" on {account.name}" if account else ""
        raise LineNotUnderstood(
            f"Your deals{where} matching “{said}” are all closed. Name the closed deal to change it, "
            f"or start the line with “new” to create a deal: new {proposal.line}"
        )
    # A stable order, so "--pick 2" means the same deal between a preview and the next run.
    top.sort(key=lambda s: (s.deal.name.lower(), s.deal.pk))
    chosen: _Scored | None = top[0] if len(top) == 1 else None
    if chosen is None:
        options = [Choice(str(s.deal.pk), _deal_label(s.deal)) for s in top[:MAX_CHOICES]]
        picked = ctx.answer("deal", options)
        chosen = next((s for s in top if str(s.deal.pk) == picked), None)
        if chosen is None:
            more = (
                f" {len(top)} deals match, here are the first {MAX_CHOICES}: "
                "add a word of the deal's name to narrow it."
                if len(top) > MAX_CHOICES
                else ""
            )
            proposal.questions.append(Question("deal", f"Which deal is “{said}”?{more}", options))
            used = {i for s in top for i, strength in enumerate(s.strengths) if strength}
            return used
    proposal.deal = chosen.deal
    proposal.version = chosen.deal.version
    for word, strength, hit in zip(norms, chosen.strengths, chosen.hits, strict=True):
        if strength == 1:
            proposal.readings.append(f"“{word}” read as “{hit}” ({chosen.deal.name})")
    return {i for i, strength in enumerate(chosen.strengths) if strength}


def _matching_accounts(words: list[str], ctx: Context) -> list[tuple[Account, int]]:
    """Accounts named by the first words (`new acme expansion`): each with how many leading words
    name it; only those with the most."""
    if not words:
        return []
    condition = Q(name__icontains=words[0][:3]) | Q(domains__domain__icontains=words[0][:3])
    accounts = list(
        visible(ctx.user, Account)
        .filter(condition)
        .prefetch_related("domains")
        .distinct()
        .order_by("name", "id")[:CANDIDATES_MAX]
    )
    scored = []
    for account in accounts:
        targets = _words_of(account.name) | _domain_words([d.domain for d in account.domains.all()])
        run = 0
        while run < len(words) and _strength(words[run], targets)[0] >= 2:
            run += 1
        if run:
            scored.append((account, run))
    best = max((run for _, run in scored), default=0)
    return [(account, run) for account, run in scored if run == best]


def _no_deal_message(said: str, words: list[Tok], ctx: Context) -> str:
    accounts = _matching_accounts([tok.norm for tok in words], ctx)
    if accounts:
        names = ", ".join(account.name for account, _ in accounts[:3])
        return (
            f"No deal you can change matches “{said}”. To create one on {names}, "
            f"start the line with “new”, e.g. new {said} 20k close end of quarter."
        )
    return (
        f"No deal you can change matches “{said}”. Start the line with the deal's account and a word "
        f"of its name, e.g. {EXAMPLE}"
    )


def _resolve_new(proposal: Proposal, words: list[Tok], ctx: Context) -> set[int]:
    said = " ".join(tok.raw for tok in words)
    if not words:
        raise LineNotUnderstood("Say which account the new deal is for, e.g. new acme expansion 20k.")
    found = _matching_accounts([tok.norm for tok in words], ctx)
    if not found:
        raise LineNotUnderstood(
            f"No account you can see matches “{said}”: add the account first (Accounts → New account)."
        )
    chosen = found[0] if len(found) == 1 else None
    if chosen is None:
        options = [Choice(str(account.pk), account.name) for account, _ in found[:MAX_CHOICES]]
        picked = ctx.answer("account", options)
        chosen = next((item for item in found if str(item[0].pk) == picked), None)
        if chosen is None:
            proposal.questions.append(Question("account", "Which account is the new deal for?", options))
            return set(range(len(words)))
    account, run = chosen
    name = " ".join(tok.raw for tok in words) if run < len(words) else f"{account.name} deal"
    proposal.new_deal = NewDeal(account=account, name=name[:1].upper() + name[1:])
    return set(range(len(words)))


# --- from claims to changes --------------------------------------------------------------------------


def _resolve_date(proposal: Proposal, name: str, date: DateReading, closed: bool, ctx: Context) -> None:
    label = {"close_date": "close date", "next_step_date": "next step's date"}[name]
    value: dt.date | None = date.date
    if date.kind == "next-weekday" and date.other:
        options = [
            Choice(date.date.isoformat(), f"{format_date(date.date)} (this week)"),
            Choice(date.other.isoformat(), f"{format_date(date.other)} (next week)"),
        ]
        picked = ctx.answer(name, options)
        if picked is None:
            proposal.questions.append(
                Question(name, f"“{date.text}”: which {date.date:%A} is the {label}?", options)
            )
            return
        value = dt.date.fromisoformat(picked)
    elif date.kind == "rollover" and date.other:
        ahead = Choice(date.date.isoformat(), format_date(date.date))
        if name == "close_date" and closed:
            options = [Choice(date.other.isoformat(), format_date(date.other)), ahead]
        else:
            options = [ahead, Choice("keep", f"Leave the {label} as it is")]
        picked = ctx.answer(name, options)
        if picked is None:
            proposal.questions.append(
                Question(
                    name,
                    f"“{date.text}” has passed this year ({format_date(date.other)}). Which {label}?",
                    options,
                )
            )
            return
        value = None if picked == "keep" else dt.date.fromisoformat(picked)
    if value is None:
        return
    if value < ctx.today and not (name == "close_date" and closed):
        if name == "close_date":
            proposal.problems.append(
                f"The close date {format_date(value)} (“{date.text}”) is in the past: give the date you now "
                "expect to sign, or mark the deal won or lost."
            )
        else:
            proposal.problems.append(
                f"The next step's date {format_date(value)} (“{date.text}”) is in the past."
            )
        return
    proposal.changes[name] = value
    proposal.readings.append(f"“{date.text}” → {format_date(value)}")


def _default_stage(ctx: Context) -> Stage | None:
    return next((s for s in ctx.stages if s.kind == StageKind.OPEN), None)


def _assign(proposal: Proposal, claims: Claims, ctx: Context) -> None:
    changes = proposal.changes
    # Stage first: whether the deal ends up closed decides whether a past close date is allowed.
    if len(claims.stages) > 1:
        names = ", ".join(text for text, _ in claims.stages)
        proposal.problems.append(f"The line names more than one stage ({names}): keep one.")
    elif claims.stages:
        text, options = claims.stages[0]
        if not options:
            proposal.problems.append(f"The pipeline has no stage for “{text}”.")
        elif len(options) == 1:
            changes["stage"] = options[0]
        else:
            choices = [Choice(str(s.pk), s.name) for s in options]
            picked = ctx.answer("stage", choices)
            if picked is None:
                proposal.questions.append(Question("stage", f"Which stage is “{text}”?", choices))
            else:
                changes["stage"] = next(s for s in options if str(s.pk) == picked)
    target = changes.get("stage") or (proposal.deal.stage if proposal.deal else _default_stage(ctx))
    closed = bool(target and target.kind != StageKind.OPEN)

    if len(claims.amounts) > 1:
        amounts = ", ".join(a.text for a in claims.amounts)
        proposal.problems.append(f"The line gives more than one amount ({amounts}): keep one.")
    elif claims.amounts:
        amount = claims.amounts[0]
        if len(amount.values) == 1:
            changes["amount"] = amount.values[0]
        else:
            choices = [Choice(str(v), format_amount(v, amount.currency or "")) for v in amount.values]
            picked = ctx.answer("amount", choices)
            if picked is None:
                readings = " or ".join(choice.label for choice in choices)
                proposal.questions.append(Question("amount", f"Is “{amount.text}” {readings}?", choices))
            else:
                changes["amount"] = Decimal(picked)
        if amount.currency:
            changes["currency"] = amount.currency
    currencies = set(claims.currencies) | ({changes["currency"]} if "currency" in changes else set())
    if len(currencies) > 1:
        proposal.problems.append(f"The line gives more than one currency ({', '.join(sorted(currencies))}).")
    elif currencies:
        changes["currency"] = currencies.pop()

    for n, date in enumerate(claims.loose_dates, start=1):
        key = "date" if n == 1 else f"date{n}"
        choices = [
            Choice("close_date", f"The close date: {format_date(date.date)}"),
            Choice("next_step_date", f"The next step's date: {format_date(date.date)}"),
        ]
        picked = ctx.answer(key, choices)
        if picked is None:
            proposal.questions.append(Question(key, f"What is “{date.text}”?", choices))
        else:
            (claims.close if picked == "close_date" else claims.next_dates).append(date)
    for name, dates in (("close_date", claims.close), ("next_step_date", claims.next_dates)):
        if len(dates) > 1:
            said = ", ".join(d.text for d in dates)
            label = "close date" if name == "close_date" else "next step date"
            proposal.problems.append(f"The line gives more than one {label} ({said}): keep one.")
        elif dates:
            _resolve_date(proposal, name, dates[0], closed, ctx)

    if claims.next_text is not None:
        if len(claims.next_text) > 255:
            proposal.problems.append("The next step is longer than 255 characters: shorten it.")
        else:
            changes["next_step"] = claims.next_text
    if claims.lost_reason is not None:
        if len(claims.lost_reason) > 255:
            proposal.problems.append("The lost reason is longer than 255 characters: shorten it.")
        else:
            changes["lost_reason"] = claims.lost_reason


def _context(user: Any, now: dt.datetime | None, day_first: bool | None, choices: dict[str, str] | None):
    return Context(
        user=user,
        now=local_now(user, now),
        day_first=day_first_default() if day_first is None else day_first,
        choices={str(k): str(v) for k, v in (choices or {}).items() if v not in (None, "")},
        stages=list(Stage.objects.filter(is_active=True).order_by("order", "id")),
    )


def parse(
    user: Any,
    line: str,
    choices: dict[str, str] | None = None,
    *,
    now: dt.datetime | None = None,
    day_first: bool | None = None,
) -> Proposal:
    """Read `line` for `user`. `choices` answers earlier questions ({key: value}); `now` fixes the
    moment relative dates count from (default: the current time, in the user's time zone)."""
    text = " ".join((line or "").split())
    if not text:
        raise LineNotUnderstood(f"Type a line first, for example: {EXAMPLE}")
    if len(text) > MAX_LINE:
        raise LineNotUnderstood(f"A line is at most {MAX_LINE} characters.")
    ctx = _context(user, now, day_first, choices)
    proposal = Proposal(line=text, choices=dict(ctx.choices), today=ctx.today)
    claims = Claims()
    toks = tokenize(text)
    split = next((k for k, tok in enumerate(toks) if tok.norm == "next" and tok.colon), None)
    if split is None:
        _read_parts(toks, claims, ctx)
    else:
        _read_parts(toks[:split], claims, ctx)
        rest = _read_next_step(toks[split + 1 :], toks[split], claims, ctx)
        _read_parts(rest, claims, ctx)

    words = claims.deal_words
    if not words:
        raise LineNotUnderstood(
            f"Start the line with the deal: its account and a word of its name, e.g. {EXAMPLE}"
        )
    used = _resolve_new(proposal, words, ctx) if claims.is_new else _resolve_deal(proposal, words, ctx)
    unknown = list(claims.unknown)
    for n, tok in enumerate(words):
        if n not in used:
            hint = keyword_hint(tok.norm, ctx.stages)
            unknown.append((tok.index, f"{tok.raw} ({hint}?)" if hint else tok.raw))
    proposal.unknown = [text for _, text in sorted(unknown)]
    _assign(proposal, claims, ctx)
    if not proposal.changes and not proposal.questions and not proposal.problems and not proposal.new_deal:
        proposal.problems.append(
            "Nothing to change: add an amount (48k), a close date (close mar 14), a stage or a next step "
            "(next: send SOW friday)."
        )
    return proposal
