"""Background work: the nightly job (snapshot, then evaluation), its idempotence, its lock, a real worker."""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import subprocess
import sys
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
from django.utils import timezone
from huey.contrib.djhuey import HUEY
from huey.exceptions import TaskLockedException

from tests.conftest import stage
from truepipe.core.models import Via
from truepipe.hygiene import tasks
from truepipe.hygiene.engine import end_of_day, latest_run
from truepipe.hygiene.models import EvaluationRun, OpportunitySnapshot, Violation
from truepipe.pipeline import services as pipeline_services


@pytest.fixture
def immediate():
    """The real huey, running tasks inline (in memory) for the duration of a test."""
    was = HUEY.immediate
    HUEY.immediate = True
    yield HUEY
    HUEY.immediate = was


@pytest.fixture
def neglected(org):
    """A deal of ravi's opened 40 days ago and never touched since: it breaks several rules."""
    return pipeline_services.create_opportunity(
        org.ravi,
        via=Via.FORM,
        at=timezone.now() - dt.timedelta(days=40),
        name="Forgotten deal",
        account=org.acme,
        stage=stage("Proposal"),
        amount=Decimal("9000"),
        close_date=timezone.localdate() - dt.timedelta(days=5),
    )


def test_the_nightly_job_snapshots_yesterday_then_evaluates_it_and_now(immediate, neglected):
    tasks.nightly()  # enqueued through huey, run inline (periodic tasks keep no result)

    yesterday = timezone.localdate() - dt.timedelta(days=1)
    assert OpportunitySnapshot.objects.filter(day=yesterday, opportunity=neglected).exists()
    assert EvaluationRun.objects.filter(as_of=end_of_day(yesterday)).exists()
    assert EvaluationRun.objects.filter(as_of__gt=end_of_day(yesterday)).count() == 1
    assert Violation.objects.filter(opportunity=neglected, live=True).exists()


def test_running_a_night_twice_doubles_nothing(immediate, neglected):
    now = timezone.now()
    first = tasks.run_night(now=now)
    snapshots, violations, runs = (
        OpportunitySnapshot.objects.count(),
        Violation.objects.count(),
        EvaluationRun.objects.count(),
    )

    second = tasks.run_night(now=now)

    assert second.snapshot_rows == first.snapshot_rows
    assert OpportunitySnapshot.objects.count() == snapshots
    assert Violation.objects.count() == violations > 0
    assert EvaluationRun.objects.count() == runs == 2
    assert second.evaluations == [] and len(second.skipped) == 2


def test_a_later_night_evaluates_again_without_duplicating_violations(immediate, neglected):
    tasks.run_night()
    live = set(Violation.objects.filter(live=True).values_list("key", flat=True))
    recorded = Violation.objects.count()

    tasks.run_night()

    assert EvaluationRun.objects.count() == 3  # yesterday's end is not evaluated twice
    assert set(Violation.objects.filter(live=True).values_list("key", flat=True)) == live
    assert Violation.objects.count() == recorded


def test_an_evaluation_already_made_as_of_a_moment_is_not_made_again(immediate, neglected):
    moment = timezone.now()
    assert tasks.evaluate_once(moment) is True
    assert tasks.evaluate_once(moment) is False
    assert tasks.evaluate_once(moment - dt.timedelta(hours=1)) is False
    assert latest_run().as_of == moment


def test_two_evaluations_never_run_at_once(immediate, neglected):
    with HUEY.lock_task(tasks.EVALUATION_LOCK), pytest.raises(TaskLockedException):
        tasks.evaluate_once(timezone.now())
    assert not EvaluationRun.objects.exists()


def redis_up() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=1).close()
        return True
    except OSError:
        return False


@pytest.mark.skipif(not redis_up(), reason="needs Redis at 127.0.0.1:6379")
def test_a_task_enqueued_by_one_process_runs_in_the_worker_process(tmp_path: Path):
    name = f"truepipe-test-{uuid.uuid4().hex[:12]}"
    env = {
        **os.environ,
        "TRUEPIPE_HOME": str(tmp_path),
        "TRUEPIPE_TASK_QUEUE": "redis://127.0.0.1:6379/0",
        "TRUEPIPE_TASK_QUEUE_NAME": name,
    }
    env.pop("TRUEPIPE_DATABASE_URL", None)  # the ping task touches no database
    truepipe = [sys.executable, "-m", "truepipe.cli"]
    worker = subprocess.Popen(
        [*truepipe, "worker", "--no-periodic"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        enqueue = (
            "import json, os; from truepipe.hygiene.tasks import ping; "
            "print(json.dumps({'me': os.getpid(), 'ran': ping().get(blocking=True, timeout=60)}))"
        )
        done = subprocess.run(
            [*truepipe, "shell", "-c", enqueue], env=env, capture_output=True, text=True, timeout=90
        )
        assert done.returncode == 0, done.stderr
        answer = json.loads(done.stdout.strip().splitlines()[-1])
        assert answer["ran"]["pid"] == worker.pid != answer["me"]
        assert answer["ran"]["queue"] == "RedisHuey"
    finally:
        worker.terminate()
        output = worker.communicate(timeout=30)[0]
        from huey import RedisHuey

        RedisHuey(name, url="redis://127.0.0.1:6379/0").flush()
    assert f"Redis redis://127.0.0.1:6379/0 (name '{name}')" in output


def test_a_queue_setting_that_is_not_a_queue_is_refused_at_start(tmp_path: Path):
    env = {**os.environ, "TRUEPIPE_HOME": str(tmp_path), "TRUEPIPE_TASK_QUEUE": "carrier-pigeon"}
    done = subprocess.run(
        [sys.executable, "-m", "truepipe.cli", "worker"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    assert "TRUEPIPE_TASK_QUEUE must be sqlite, immediate or a redis:// URL" in done.stderr
