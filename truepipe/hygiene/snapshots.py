"""Daily snapshots: every deal open at the end of a day, with its key fields as they were then.

A snapshot is rebuilt from history (the engine's as-of state), so a day can be
snapshotted or back-filled at any later time and still show what was true that
day. One day is one DELETE and one INSERT … SELECT in one transaction: taking
the same day twice leaves the same rows.

Simplification: history records owner, stage, amount, close date and next-step
date, but not probability or forecast category. A deal whose probability was
overridden keeps its *current* override and forecast category in every
snapshot; every other deal takes both from its stage as of that day (which is
what the product sets them to on a stage change).
"""

from __future__ import annotations

import datetime as dt

from django.db import connection, transaction

from truepipe.hygiene.engine import EvalContext, end_of_day, state_sql
from truepipe.hygiene.models import OpportunitySnapshot
from truepipe.hygiene.policy import current_policy
from truepipe.pipeline.models import StageKind

TABLE = OpportunitySnapshot._meta.db_table


def take_snapshot(day: dt.date) -> int:
    """Write the snapshot of one day (replacing any earlier one of that day). Returns the row count."""
    ctx = EvalContext(as_of=end_of_day(day), policy=current_policy())
    sql = f"""
        INSERT INTO {TABLE} (day, opportunity_id, owner_id, stage_id, amount, currency, close_date,
                             probability, forecast_category, next_step_date)
        SELECT {ctx.date(day)}, s.id, s.owner_id, s.stage_id, s.amount, s.currency, s.close_date,
               CASE WHEN o.probability_overridden THEN o.probability ELSE st.probability END,
               CASE WHEN o.probability_overridden THEN o.forecast_category ELSE st.forecast_category END,
               s.next_step_date
        FROM ({state_sql(ctx)}) s
        JOIN pipeline_opportunity o ON o.id = s.id
        JOIN pipeline_stage st ON st.id = s.stage_id
        WHERE s.stage_kind = '{StageKind.OPEN.value}'"""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {TABLE} WHERE day = %s", [day])
        cursor.execute(sql)
        return cursor.rowcount


def snapshot_days() -> list[dt.date]:
    """The days that have a snapshot, oldest first."""
    return list(OpportunitySnapshot.objects.values_list("day", flat=True).distinct().order_by("day"))
