"""The monthly job: files written, the ledger kept, a missed month made up at start, the
reports e-mailed through a real aiosmtpd server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from monitor.clock import FakeClock
from monitor.config import Settings
from monitor.reports.schedule import ReportJob, ledger_key, write_reports
from monitor.store.base import Store
from probes.base import Outcome
from tests.loopback import Recorder, free_port, mail_sink
from tests.monitor.reports.conftest import Feeder, Pattern, T, settings_for


@pytest.fixture
def smtpd() -> Iterator[tuple[Recorder, int]]:
    with mail_sink() as sink:
        yield sink


def job_settings(tmp_path: Path, port: int | None = None, **report: Any) -> Settings:
    extra: dict[str, Any] = {}
    if port is not None:
        extra["notifiers"] = [
            {
                "type": "email",
                "name": "reports",
                "tiers": ["ticket"],
                "host": "127.0.0.1",
                "port": port,
                "tls": "none",
                "mail_from": "availmon@example.net",
                "to": ["sre@example.net"],
                "timeout_seconds": 10,
            }
        ]
    base = settings_for(**extra)
    data = base.model_dump(mode="json")
    data["report"].update(
        {
            "dir": str(tmp_path / "reports"),
            "formats": ["json", "csv", "md", "html"],
            **({"email_to": ["cfo@example.net"], "email_via": "reports"} if port else {}),
            **report,
        }
    )
    for n in data["notifiers"]:
        n.pop("password", None)
    return Settings(**data)


def ledger(store: Store, month: str = "2026-04") -> dict[str, Any]:
    entry = store.get_state(ledger_key("mail", month))
    assert isinstance(entry, dict)
    return entry


def _april_data(settings: Settings, store: Store) -> None:
    start = T("2026-04-10T00:00:00Z")
    Feeder(settings, store).run(
        start, start + 1800, Pattern().add("api", start + 60, start + 75, Outcome.SERVER_ERROR)
    )


def test_write_reports_writes_each_format(tmp_path: Path, store: Store) -> None:
    settings = job_settings(tmp_path)
    _april_data(settings, store)
    paths = write_reports(
        store, settings, "2026-04", tmp_path / "out", ["json", "md"], now=T("2026-05-02T00:00:00Z")
    )
    assert sorted(p.name for p in paths) == [
        "availmon-2026-04-mail.json",
        "availmon-2026-04-mail.md",
    ]
    report = json.loads((tmp_path / "out" / "2026-04" / "availmon-2026-04-mail.json").read_text())
    assert report["unavailable_seconds"]["service"] == 15
    assert not list((tmp_path / "out").rglob("*.tmp"))
    with pytest.raises(ValueError, match="unknown report format 'xml'"):
        write_reports(store, settings, "2026-04", tmp_path / "out", ["xml"])


async def test_catch_up_writes_a_missed_month_once(tmp_path: Path, store: Store) -> None:
    settings = job_settings(tmp_path)
    _april_data(settings, store)
    clock = FakeClock(T("2026-05-03T08:00:00Z"))
    job = ReportJob(settings, store, clock, send_email=False)
    paths = await job.catch_up()
    assert sorted(p.suffix for p in paths) == [".csv", ".html", ".json", ".md"]
    assert all(p.exists() and p.stat().st_size > 200 for p in paths)
    entry = ledger(store)
    assert (
        entry["availability_percent"]
        == json.loads(paths[0].with_suffix(".json").read_text())["availability_percent"]
    )
    assert entry["emailed"] is None and entry["partial"] is False
    assert len(entry["files"]) == 4
    # the ledger says it is done: a second start writes nothing
    (tmp_path / "reports" / "2026-04" / "availmon-2026-04-mail.md").unlink()
    assert await job.catch_up() == []
    assert not (tmp_path / "reports" / "2026-04" / "availmon-2026-04-mail.md").exists()


async def test_first_start_writes_no_report_for_a_month_before_the_monitor(
    tmp_path: Path, store: Store
) -> None:
    settings = job_settings(tmp_path)
    # the monitor's first second is in May: April was before it existed
    Feeder(settings, store).run(T("2026-05-03T07:59:00Z"), T("2026-05-03T08:00:00Z"), Pattern())
    job = ReportJob(settings, store, FakeClock(T("2026-05-03T08:00:00Z")), send_email=False)
    assert await job.catch_up() == []
    assert store.get_state(ledger_key("mail", "2026-04")) is None
    assert not (tmp_path / "reports" / "2026-04").exists()


async def test_catch_up_leaves_the_first_minutes_to_the_cron_job(
    tmp_path: Path, store: Store
) -> None:
    settings = job_settings(tmp_path)
    job = ReportJob(settings, store, FakeClock(T("2026-05-01T00:02:00Z")), send_email=False)
    assert await job.catch_up() == []
    assert store.get_state(ledger_key("mail", "2026-04")) is None


async def test_run_month_emails_the_reports(
    tmp_path: Path, store: Store, smtpd: tuple[Recorder, int]
) -> None:
    recorder, port = smtpd
    settings = job_settings(tmp_path, port)
    _april_data(settings, store)
    job = ReportJob(settings, store, FakeClock(T("2026-05-01T00:05:00Z")))
    paths = await job.run_month("2026-04")
    assert len(recorder.messages) == 1
    envelope = recorder.messages[0]
    assert envelope.rcpt_tos == ["cfo@example.net"]
    assert isinstance(envelope.content, bytes)
    msg: Message = message_from_bytes(envelope.content)
    assert msg["Subject"].startswith("availmon availability report 2026-04: mail 99.99")
    assert "met" in msg["Subject"]
    names = sorted(str(part.get_filename()) for part in msg.walk() if part.get_filename())
    assert names == sorted(p.name for p in paths)
    assert ledger(store)["emailed"] is True


async def test_failed_email_is_recorded_and_retried_at_start(
    tmp_path: Path, store: Store, smtpd: tuple[Recorder, int]
) -> None:
    recorder, port = smtpd
    down = job_settings(tmp_path, free_port())  # nothing listens there
    _april_data(down, store)
    clock = FakeClock(T("2026-05-01T00:05:00Z"))
    await ReportJob(down, store, clock).run_month("2026-04")
    entry = ledger(store)
    assert entry["emailed"] is False and entry["email_error"]
    up = job_settings(tmp_path, port)
    clock.advance(3600)
    assert await ReportJob(up, store, clock).catch_up() == []  # files exist: only the e-mail
    assert len(recorder.messages) == 1
    assert ledger(store)["emailed"] is True


async def test_install_uses_a_cron_trigger_in_the_report_zone(tmp_path: Path, store: Store) -> None:
    settings = job_settings(tmp_path, timezone="America/New_York")
    scheduler = AsyncIOScheduler(timezone=ZoneInfo("UTC"))
    ReportJob(settings, store, FakeClock()).install(scheduler)
    job = scheduler.get_job("monthly-report")
    assert job is not None
    tz = ZoneInfo("America/New_York")
    fire = job.trigger.get_next_fire_time(None, datetime(2026, 3, 15, tzinfo=tz))
    assert fire == datetime(2026, 4, 1, 0, 5, tzinfo=tz)
    assert fire.utcoffset().total_seconds() == -4 * 3600
