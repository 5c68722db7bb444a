"""Rules about deals that never reached the CRM: the shadow pipeline and unlogged wins.

- `unlogged_deal`: a rep keeps e-mailing and meeting one outside company (captured touches at
  its domain, `capture_touchdomain`) and no deal exists there. The same SQL, with a lower
  threshold and the rep's dismissals, gives the shadow pipeline's suggestions
  (`truepipe.capture.shadow`).
- `unlogged_win`: finance reported a signed contract (`truepipe import contracts`) that no won
  deal matches (`truepipe.contracts`).

Both are about a rep rather than one deal or activity (subject "rep_day"): they run in full
evaluations only, like the missed daily update; a deal written in between is judged at the
next one (the contracts import evaluates `unlogged_win` at once, see contracts.services).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any, ClassVar

from truepipe.capture.ingest import FREE_MAIL
from truepipe.hygiene.rules import register
from truepipe.hygiene.rules.base import Rule
from truepipe.hygiene.rules.text import round_int, thousands
from truepipe.pipeline.models import StageKind

if TYPE_CHECKING:
    from truepipe.hygiene.engine import EvalContext

# The deals as they are now, in the columns these rules read from the engine's state: for a
# look at the present without materialising the whole state (suggestions, the contracts import).
LIVE_DEALS = (
    "(SELECT o.id, o.owner_id, st.kind AS stage_kind, o.amount, o.currency, o.close_date, o.closed_at"
    " FROM pipeline_opportunity o JOIN pipeline_stage st ON st.id = o.stage_id"
    " WHERE o.deleted_at IS NULL)"
)
SAMPLE_SUBJECTS = 3
# Violation keys are at most this long (hygiene_violation.key); a domain is at most 253.
KEY_LENGTH = 191


def shadow_groups_sql(
    ctx: EvalContext,
    *,
    start: dt.datetime,
    minimum: int,
    deals: str = "{state}",
    touch_filter: str = "",
) -> str:
    """One row per rep and outside domain with at least `minimum` captured customer touches in
    (start, as-of] and no deal at an account of that domain: (owner_id, domain, touches,
    first_touch, last_touch, account_id, account_name, s1..s3: the latest distinct subjects).

    - A touch is a non-deleted captured activity (logged by the moment) that involved the domain;
      several people of the company on one message are one touch. Public mail services
      (gmail.com, ...) are nobody's company and never count.
    - Excluded domains (capture_excludeddomain: everyone's, or the rep's own) never count.
    - "No deal": no open deal of anyone at an account with the domain, and none won or lost there
      since the window started (the touches are then that deal's tail: onboarding, or the end).
    - `deals` is the relation of deals (id, stage_kind, closed_at): the engine's state as of the
      moment for the rule, `LIVE_DEALS` for the suggestions; `touch_filter` narrows the touches
      (`AND ...` over `td`: whose, since a dismissal).
    """
    at = ctx.ts(ctx.as_of)
    since = ctx.ts(start)
    free = ", ".join(f"'{domain}'" for domain in sorted(FREE_MAIL))
    open_kind = StageKind.OPEN.value
    touched = f"""
        SELECT td.owner_id, td.domain, td.activity_id, td.occurred_at, a.subject
        FROM capture_touchdomain td
        JOIN activities_activity a ON a.id = td.activity_id
        WHERE td.occurred_at > {since} AND td.occurred_at <= {at}
          AND a.logged_at <= {at} AND (a.deleted_at IS NULL OR a.deleted_at > {at})
          AND td.domain NOT IN ({free}){touch_filter}"""
    pick = " ".join(
        f", MAX(CASE WHEN rn = {n} THEN subject END) AS s{n}" for n in range(1, SAMPLE_SUBJECTS + 1)
    )
    # The touches are read twice (counted, then the few subjects of the groups that qualify)
    # rather than kept in a CTE that PostgreSQL would materialise with every subject in it.
    return f"""
        WITH sp_groups AS (
            SELECT g.* FROM (
                SELECT t.owner_id, t.domain, COUNT(DISTINCT t.activity_id) AS touches,
                       MIN(t.occurred_at) AS first_touch, MAX(t.occurred_at) AS last_touch
                FROM ({touched}) t
                GROUP BY t.owner_id, t.domain
                HAVING COUNT(DISTINCT t.activity_id) >= {int(minimum)}
            ) g
            WHERE NOT EXISTS (
                    SELECT 1 FROM capture_excludeddomain e
                    WHERE e.domain = g.domain AND (e.user_id IS NULL OR e.user_id = g.owner_id))
              AND NOT EXISTS (
                    SELECT 1 FROM accounts_accountdomain dd
                    JOIN pipeline_opportunity o ON o.account_id = dd.account_id
                    JOIN {deals} s ON s.id = o.id
                    WHERE dd.domain = g.domain
                      AND (s.stage_kind = '{open_kind}' OR s.closed_at > {since}))
        ), sp_subjects AS (
            SELECT owner_id, domain{pick}
            FROM (
                SELECT x.owner_id, x.domain, x.subject, ROW_NUMBER() OVER (
                    PARTITION BY x.owner_id, x.domain ORDER BY x.last_at DESC, x.subject) AS rn
                FROM (
                    SELECT t.owner_id, t.domain, t.subject, MAX(t.occurred_at) AS last_at
                    FROM ({touched}) t
                    JOIN sp_groups g ON g.owner_id = t.owner_id AND g.domain = t.domain
                    GROUP BY t.owner_id, t.domain, t.subject
                ) x
            ) y
            WHERE rn <= {SAMPLE_SUBJECTS}
            GROUP BY owner_id, domain
        )
        SELECT g.owner_id, g.domain, g.touches, g.first_touch, g.last_touch,
               ac.id AS account_id, ac.name AS account_name,
               {", ".join(f"sj.s{n}" for n in range(1, SAMPLE_SUBJECTS + 1))}
        FROM sp_groups g
        LEFT JOIN accounts_accountdomain ad ON ad.domain = g.domain
        LEFT JOIN accounts_account ac ON ac.id = ad.account_id AND ac.deleted_at IS NULL
        LEFT JOIN sp_subjects sj ON sj.owner_id = g.owner_id AND sj.domain = g.domain"""


def shadow_key_sql(ctx: EvalContext, owner: str, domain: str) -> str:
    """The unlogged_deal violation key of a rep and domain, in SQL: `unlogged_deal:r{rep}:{domain}`."""
    return f"SUBSTR('{UnloggedDeal.key}:r' || {ctx.text(owner)} || ':' || {domain}, 1, {KEY_LENGTH})"


def shadow_key(rep_id: int, domain: str) -> str:
    return f"{UnloggedDeal.key}:r{rep_id}:{domain}"[:KEY_LENGTH]


def json_string(ctx: EvalContext, expression: str) -> str:
    """A text value as JSON string text (quoted and escaped)."""
    if ctx.vendor == "sqlite":
        return f"json_quote({expression})"
    return f"CAST(to_json(CAST({expression} AS TEXT)) AS TEXT)"


def subjects_json(ctx: EvalContext) -> str:
    """The sample subjects s1..sN of a row (`f`) as a JSON array, the missing ones left out."""
    first = f"COALESCE({json_string(ctx, 'f.s1')}, '')"
    rest = " || ".join(
        f"CASE WHEN f.s{n} IS NULL THEN '' ELSE ',' || {json_string(ctx, f'f.s{n}')} END"
        for n in range(2, SAMPLE_SUBJECTS + 1)
    )
    return ctx.json_text(f"'[' || {first} || {rest} || ']'")


def money_text(ctx: EvalContext, expression: str) -> str:
    """An amount with two decimals, as text ("120000.00"), the same on either database."""
    if ctx.vendor == "sqlite":
        return f"printf('%.2f', {expression})"
    return f"to_char({expression}, 'FM999999999999990.00')"


def days_apart(ctx: EvalContext, first: str, second: str) -> str:
    """Whole days between two dates, in either order."""
    if ctx.vendor == "sqlite":
        return f"ABS(julianday({first}) - julianday({second}))"
    return f"ABS({first} - {second})"


@register
class UnloggedDeal(Rule):
    key = "unlogged_deal"
    title = "Deal never logged"
    explanation = (
        "A rep had {touches} or more captured customer touches (e-mails, meetings) with one outside "
        "company's domain in the last {window_days} days, and no deal is open at an account with "
        "that domain (nor was one won or lost there in that time): the deal is being worked "
        "outside the CRM. Create the deal; the shadow pipeline suggests it from {suggest_touches} "
        "touches. A domain that is not a customer (personal, a supplier) can be excluded."
    )
    default_severity = 2
    default_params: ClassVar[dict[str, Any]] = {"window_days": 30, "touches": 5, "suggest_touches": 3}
    subject = "rep_day"
    incremental = False
    fix_minutes = 3  # create the deal

    def facts(self, ctx: EvalContext) -> str:
        start = ctx.as_of - dt.timedelta(days=float(self.params["window_days"]))
        groups = shadow_groups_sql(ctx, start=start, minimum=int(self.params["touches"]))
        return f"SELECT {shadow_key_sql(ctx, 'g.owner_id', 'g.domain')} AS key, g.* FROM ({groups}) g"

    def presentation(self, ctx: EvalContext) -> dict[str, str]:
        window = int(self.params["window_days"])
        return {
            "rep_id": "f.owner_id",
            "summary": (
                f"{ctx.text('f.touches')} || ' customer touches with ' || f.domain"
                " || CASE WHEN f.account_name IS NULL THEN '' ELSE ' (' || f.account_name || ')' END"
                f" || ' in {window} days and no deal in truepipe'"
            ),
            "evidence": ctx.json_object(
                {
                    "domain": "f.domain",
                    "touches": "f.touches",
                    "first_touch": ctx.iso_timestamp("f.first_touch"),
                    "last_touch": ctx.iso_timestamp("f.last_touch"),
                    "account_id": "f.account_id",
                    "account": "f.account_name",
                    "subjects": subjects_json(ctx),
                    "window_days": ctx.json_value(self.params["window_days"]),
                    "limit_touches": ctx.json_value(self.params["touches"]),
                    "as_of": ctx.literal(ctx.as_of.isoformat()),
                }
            ),
        }


@register
class UnloggedWin(Rule):
    key = "unlogged_win"
    title = "Win never logged"
    explanation = (
        "Finance reported a signed contract or invoice that no won deal in truepipe matches (a won "
        "deal at the customer's account, in the same currency, closing within {match_days} days of "
        "the signature, for an amount within {match_percent}%). It counts against the rep "
        "accountable for the customer (the account's owner, else the rep who touched it most) until "
        "the won deal is logged."
    )
    default_severity = 3
    default_params: ClassVar[dict[str, Any]] = {"match_days": 45, "match_percent": 10}
    subject = "rep_day"
    incremental = False
    fix_minutes = 5  # log the won deal

    def facts(self, ctx: EvalContext) -> str:
        at = ctx.ts(ctx.as_of)
        days = int(self.params["match_days"])
        percent = float(self.params["match_percent"])
        won = StageKind.WON.value
        # The same test as contracts.services.match (which links the deal after the evaluation),
        # so the violation resolves at the evaluation that first sees the won deal.
        return f"""
            SELECT '{self.key}:c' || {ctx.text("c.id")} AS key, c.id AS contract_id, c.rep_id,
                   c.customer, c.account_id, ac.name AS account_name, c.amount, c.currency,
                   c.signed_on, c.reference, c.rep_basis
            FROM contracts_contract c
            LEFT JOIN accounts_account ac ON ac.id = c.account_id
            WHERE c.rep_id IS NOT NULL AND c.imported_at <= {at}
              AND (c.opportunity_id IS NULL OR c.matched_at > {at})
              AND NOT EXISTS (
                  SELECT 1 FROM {{state}} s JOIN pipeline_opportunity o ON o.id = s.id
                  WHERE o.account_id = c.account_id AND s.stage_kind = '{won}'
                    AND s.currency = c.currency AND s.amount IS NOT NULL
                    AND ABS(s.amount - c.amount) * 100 <= c.amount * {percent!r}
                    AND s.close_date IS NOT NULL
                    AND {days_apart(ctx, "s.close_date", "c.signed_on")} <= {days}
                    AND NOT EXISTS (SELECT 1 FROM contracts_contract c2
                                    WHERE c2.opportunity_id = s.id AND c2.id <> c.id))"""

    def presentation(self, ctx: EvalContext) -> dict[str, str]:
        amount = thousands(ctx, round_int(ctx, "f.amount", exact=True))
        return {
            "rep_id": "f.rep_id",
            "amount": "f.amount",
            "summary": (
                f"'Unlogged win: ' || f.customer || ' signed ' || {amount} || ' ' || f.currency"
                f" || ' on ' || {ctx.iso_date('f.signed_on')} || ', and no won deal matches it'"
            ),
            "evidence": ctx.json_object(
                {
                    "contract_id": "f.contract_id",
                    "customer": "f.customer",
                    "account_id": "f.account_id",
                    "account": "f.account_name",
                    "amount": money_text(ctx, "f.amount"),
                    "currency": "f.currency",
                    "signed_on": ctx.iso_date("f.signed_on"),
                    "reference": "f.reference",
                    "accountable": "f.rep_basis",
                    "match_days": ctx.json_value(self.params["match_days"]),
                    "match_percent": ctx.json_value(self.params["match_percent"]),
                    "as_of": ctx.literal(ctx.as_of.isoformat()),
                }
            ),
        }
