"""Python's formatting of numbers and dates, in SQL, for findings' summaries and evidence.

A finding's summary and evidence are built by the database (a full evaluation
inserts a night's new violations with one INSERT ... SELECT). They must read
exactly as Python would write them, on SQLite and on PostgreSQL, so these
helpers reproduce Python's semantics rather than the databases' own:

- `round_int` / `round_tenths`: `round(float(x))` and `round(float(x), 1)`, which
  round the *binary* value correctly, ties to even. SQLite's ROUND(84.35, 1) gives
  84.4 where Python gives 84.3 (the double is 84.34999...), and PostgreSQL rounds
  numeric ties away from zero; both are corrected here.
- `g_tenths`: `format(x, "g")` of a value rounded to tenths.
- `thousands`: `format(n, ",")` of an integer.
- `month_day`: `%b %d` / `%b %d, %Y` with English month names.

Every helper returns an SQL expression; arguments are SQL expressions.
"""

from __future__ import annotations

from fractions import Fraction
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from truepipe.hygiene.engine import EvalContext

MONTHS = "JanFebMarAprMayJunJulAugSepOctNovDec"


def _sign(ctx: EvalContext, value: str) -> str:
    return f"CASE WHEN {value} < 0 THEN -1 ELSE 1 END"


def round_int(ctx: EvalContext, x: str, *, exact: bool = False) -> str:
    """Integer: Python's `round(float(x))` (or, with `exact`, the Decimal x's `:.0f`), ties to even.

    A binary float's fractional part is exact, and a tie (x.5) is exactly representable,
    so comparing it with 0.5 decides. On SQLite values are already binary floats, and the
    Decimal Python built from one rounds the same way.
    """
    value = x if exact and ctx.vendor != "sqlite" else ctx.float8(x)
    magnitude = f"ABS({value})"
    whole = ctx.floor_int(magnitude)
    fraction = f"({magnitude} - {whole})"
    rounded = (
        f"CASE WHEN {fraction} > 0.5 THEN {whole} + 1 WHEN {fraction} < 0.5 THEN {whole}"
        f" ELSE {whole} + {whole} % 2 END"
    )
    return f"({_sign(ctx, value)} * ({rounded}))"


def _tie_rounds_up(ctx: EvalContext, numerator: str) -> str:
    """For a decimal tie T = N/20 (N odd, not a multiple of 5), whether the double nearest T
    lies above it, so that Python's correctly rounded `round(double, 1)` goes up.

    The double nearest T is the double nearest q = N/5, divided by 4 (exact), so compare
    q's double with q = I + j/5 (I = N div 5, j = N mod 5). For N >= 40 (q >= 8) both
    `double(q) - I` and that times 5 are exact in binary floating point, so the comparison
    with j is exact; the sixteen smaller ties are listed (computed once in Python).
    """
    small = " ".join(
        f"WHEN {n} THEN {int(Fraction(n / 20) > Fraction(n, 20))}" for n in range(1, 40, 2) if n % 5
    )
    quotient = f"({ctx.float8(numerator)} / 5 - {numerator} / 5)"
    return (
        f"CASE WHEN {numerator} < 40 THEN (CASE {numerator} {small} ELSE 0 END) = 1"
        f" ELSE {quotient} * 5 > {numerator} % 5 END"
    )


def round_tenths(ctx: EvalContext, x: str) -> str:
    """Integer tenths: `round(float(x), 1) * 10`, exactly as Python rounds a binary float.

    K = floor(|x| * 10) (possibly off by one near an integer, which does not change the
    result); T = (2K + 1) / 20 is the tie between K and K + 1 tenths, and the double
    nearest T, computed by one correctly rounded division, is compared with |x|. Equal
    means x is that double: an exactly representable tie goes to even, any other goes the
    way the double lies from T. (Checked against Python's round() for every tenth-tie below
    200000 and random values.)
    """
    value = ctx.float8(x)
    magnitude = f"ABS({value})"
    whole = ctx.floor_int(f"{magnitude} * 10")
    numerator = f"(2 * {whole} + 1)"
    tie = f"({ctx.float8(numerator)} / 20)"
    rounded = (
        f"CASE WHEN {magnitude} > {tie} THEN {whole} + 1 WHEN {magnitude} < {tie} THEN {whole}"
        f" WHEN {numerator} % 5 = 0 THEN {whole} + {whole} % 2"
        f" WHEN {_tie_rounds_up(ctx, numerator)} THEN {whole} + 1 ELSE {whole} END"
    )
    return f"({_sign(ctx, value)} * ({rounded}))"


def tenths_value(ctx: EvalContext, tenths: str) -> str:
    """The number a count of tenths stands for (a JSON number: 84.3, 84.0)."""
    if ctx.vendor == "sqlite":
        return f"(({tenths}) / 10.0)"
    return f"ROUND(CAST({tenths} AS NUMERIC) / 10, 1)"


def g_tenths(ctx: EvalContext, tenths: str, *, plus: bool = False, negative: str | None = None) -> str:
    """`format(value, "g")` (`"+g"` with plus) of a value given in integer tenths.

    `negative` is the SQL condition that the unrounded value was negative (Python keeps
    the sign of -0.0); by default the sign of the tenths.
    """
    magnitude = f"ABS({tenths})"
    sign = f"CASE WHEN {negative or f'{tenths} < 0'} THEN '-' ELSE '{'+' if plus else ''}' END"
    units, tenth = f"({magnitude} / 10)", f"({magnitude} % 10)"
    small = f"{ctx.text(units)} || CASE WHEN {tenth} <> 0 THEN '.' || {ctx.text(tenth)} ELSE '' END"
    # Six significant digits: from 100000 on, the value rounds to a whole number (ties to even:
    # a tenths value ending in 5 is an exact binary half)...
    whole = f"({units} + CASE WHEN {tenth} > 5 OR ({tenth} = 5 AND {units} % 2 = 1) THEN 1 ELSE 0 END)"
    # ...and from 1000000 on it is written with an exponent: 1.23457e+06 (six digits, ties to
    # even: the value is then a whole number, exact in binary).
    exponent = f"(LENGTH({ctx.text(units)}) - 1)"
    integer = "INTEGER" if ctx.vendor == "sqlite" else "BIGINT"
    step = f"CAST(SUBSTR('1000000000000000000000', 1, {exponent} - 3) AS {integer})"
    head, rest = f"({magnitude} / {step})", f"({magnitude} % {step})"
    up = f"2 * {rest} > {step} OR (2 * {rest} = {step} AND {head} % 2 = 1)"
    digits = ctx.text(f"{head} + CASE WHEN {up} THEN 1 ELSE 0 END")
    # Rounding up to 1000000 carries into the exponent, and the mantissa reads 1 all the same.
    power = f"({exponent} + LENGTH({digits}) - 6)"
    scientific = (
        f"RTRIM(RTRIM(SUBSTR({digits}, 1, 1) || '.' || SUBSTR({digits}, 2), '0'), '.')"
        f" || 'e+' || CASE WHEN {power} < 10 THEN '0' ELSE '' END || {ctx.text(power)}"
    )
    body = (
        f"CASE WHEN {magnitude} < 1000000 THEN {small}"
        f" WHEN {magnitude} < 9999995 THEN {ctx.text(whole)} ELSE {scientific} END"
    )
    return f"({sign} || {body})"


def thousands(ctx: EvalContext, integer: str) -> str:
    """`format(n, ",")`: 1234567 -> '1,234,567'."""
    if ctx.vendor == "sqlite":
        return f"printf('%,d', {integer})"
    return f"to_char({integer}, 'FM999,999,999,999,999,999,990')"


def month_day(ctx: EvalContext, day: str, *, year: bool = False) -> str:
    """`%b %d` (and `, %Y`) of a date, with English month abbreviations as Python's C locale."""
    if ctx.vendor == "sqlite":
        month = f"SUBSTR('{MONTHS}', (CAST(strftime('%m', {day}) AS INTEGER) - 1) * 3 + 1, 3)"
        text = f"{month} || ' ' || strftime('%d', {day})"
        return f"({text} || ', ' || strftime('%Y', {day}))" if year else f"({text})"
    return f"to_char({day}, '{'Mon DD, YYYY' if year else 'Mon DD'}')"


def plural(count: str, many: str = "s", one: str = "") -> str:
    return f"CASE WHEN {count} <> 1 THEN '{many}' ELSE '{one}' END"


def joined(parts: list[tuple[str, str]], separator: str) -> str:
    """The texts whose conditions hold, joined by the separator (like `separator.join(...)`)."""
    pieces = " || ".join(
        f"CASE WHEN {condition} THEN '{separator}' || {text} ELSE '' END" for condition, text in parts
    )
    return f"SUBSTR({pieces}, {len(separator) + 1})"


def json_list(ctx: EvalContext, items: list[tuple[str, str]]) -> str:
    """A JSON array of the constant strings whose conditions hold, in order."""
    pieces = " || ".join(f"CASE WHEN {condition} THEN ',\"{item}\"' ELSE '' END" for condition, item in items)
    return ctx.json_text(f"'[' || SUBSTR({pieces}, 2) || ']'")
