"""The monthly report job: write last month's reports, make up a missed run, e-mail them.

The ledger in the store (``report/{service}/{month}``) is what says a report exists, not
APScheduler's misfire handling: a daemon that was down on the 1st writes the missing
reports at its next start (`catch_up`).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiosmtplib
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger

from alerting.notifiers.email import EmailConfig, send_via
from monitor.clock import Clock
from monitor.config import Settings
from monitor.intervals import month_bounds, previous_month
from monitor.reports.compute import NoData, build_report
from monitor.reports.render import EXTENSIONS, fmt_value, render
from monitor.reports.seal import load_signing_key, sign
from monitor.store.base import Store

log = logging.getLogger(__name__)

#: minutes past local midnight of the 1st when the job runs: by then every second of the
#: month is final (an attempt's deadline is at most a couple of minutes)
RUN_AT_MINUTE = 5
_MIME = {
    "json": ("application", "json"),
    "csv": ("text", "csv"),
    "md": ("text", "markdown"),
    "html": ("text", "html"),
    "sig": ("text", "plain"),  # a JSON report's detached signature, base64 on one line
}


def ledger_key(service: str, month: str) -> str:
    return f"report/{service}/{month}"


def report_paths(out_dir: Path, month: str, service: str | None, fmt: str) -> Path:
    """`{out_dir}/{month}/availmon-{month}-{service}.{ext}`; the all-services document
    drops the service (service names are never empty, so the two cannot collide)."""
    name = f"availmon-{month}" + (f"-{service}" if service else "") + f".{EXTENSIONS[fmt]}"
    return Path(out_dir) / month / name


def write_reports(
    store: Store,
    settings: Settings,
    month: str,
    out_dir: Path | str,
    formats: list[str] | tuple[str, ...],
    *,
    now: float | None = None,
    services: list[str] | None = None,
) -> list[Path]:
    """Build the month's report of each service and write one file per service and
    format, plus one all-services document per format when there are several."""
    return _write(store, settings, month, Path(out_dir), formats, now, services)[0]


def _write(
    store: Store,
    settings: Settings,
    month: str,
    out_dir: Path,
    formats: list[str] | tuple[str, ...],
    now: float | None,
    services: list[str] | None,
) -> tuple[list[Path], list[dict[str, Any]]]:
    for fmt in formats:
        if fmt not in EXTENSIONS:
            raise ValueError(f"unknown report format {fmt!r} (json, csv, md, html)")
    names = services if services is not None else [s.name for s in settings.services]
    key = (
        None
        if settings.report.signing_key is None
        else load_signing_key(settings.report.signing_key)
    )
    reports = []
    for name in names:
        try:
            reports.append(build_report(store, settings, name, month, now=now))
        except NoData:
            # the month before the monitor existed: no report (not a 100 % one)
            log.info("monthly report: no second of %s is stored for %s; none written", name, month)
    written: list[Path] = []
    for fmt in formats:
        docs: list[tuple[str | None, list[dict[str, Any]]]] = [(r["service"], [r]) for r in reports]
        if len(reports) > 1:
            docs.append((None, reports))
        for service, batch in docs:
            path = report_paths(Path(out_dir), month, service, fmt)
            path.parent.mkdir(parents=True, exist_ok=True)
            text = render(batch, fmt)
            outputs = [(path, text)]
            if key is not None and fmt == "json":
                # the detached signature of exactly the document written (seal.py)
                signature = sign(batch[0] if len(batch) == 1 else batch, key)
                outputs.append((path.with_name(path.name + ".sig"), signature))
            for target, content in outputs:
                tmp = target.with_name(target.name + ".tmp")
                tmp.write_text(content, encoding="utf-8")
                tmp.replace(target)  # a reader never sees half a report
                written.append(target)
    return written, reports


def _mine(path: Path, month: str, service: str) -> bool:
    """A file of this service's report (a format, or the JSON's signature)."""
    stem = f"availmon-{month}-{service}."
    return path.name.startswith(stem) and path.name[len(stem) :] in {
        *EXTENSIONS.values(),
        "json.sig",
    }


class ReportJob:
    """Writes (and e-mails) every service's report for the month just ended."""

    def __init__(self, settings: Settings, store: Store, clock: Clock, *, send_email: bool = True):
        self.settings = settings
        self.store = store
        self.clock = clock
        self.send_email = send_email
        self.tz = ZoneInfo(settings.report.timezone)
        self._lock = asyncio.Lock()

    def install(self, scheduler: AsyncIOScheduler) -> None:
        scheduler.add_job(
            self.run_previous_month,
            CronTrigger(day=1, hour=0, minute=RUN_AT_MINUTE, timezone=self.tz),
            id="monthly-report",
            name="monthly availability report",
            replace_existing=True,
            coalesce=True,
            # a late run is still wanted; catch_up covers a daemon that was down instead
            misfire_grace_time=6 * 3600,
        )

    async def run_previous_month(self) -> list[Path]:
        return await self.run_month(previous_month(self.clock.wall(), self.tz))

    async def run_month(self, month: str, services: list[str] | None = None) -> list[Path]:
        """Write the month's reports (all services, or those named), record them in the
        ledger, then e-mail them. A failed e-mail is recorded, not raised."""
        async with self._lock:
            names = services if services is not None else [s.name for s in self.settings.services]
            now = self.clock.wall()
            paths, reports = await asyncio.to_thread(
                _write,
                self.store,
                self.settings,
                month,
                Path(self.settings.report.dir),
                list(self.settings.report.formats),
                now,
                names,
            )
            for r in reports:
                entry = {
                    "written_at": datetime.fromtimestamp(now, self.tz).isoformat(),
                    "files": [str(p) for p in paths if _mine(p, month, r["service"])],
                    "availability_percent": r["availability_percent"],
                    "met": r["met"],
                    "coverage_percent": r["coverage_percent"],
                    "partial": r["partial"],
                    "emailed": None,
                }
                await asyncio.to_thread(
                    self.store.set_state, ledger_key(r["service"], month), entry
                )
            if not reports:
                return paths
            log.info("wrote %d report files for %s", len(paths), month)
            if self.send_email and self._email_target() is not None:
                await self._email(month, reports, paths)
            return paths

    async def catch_up(self) -> list[Path]:
        """At daemon start: write last month's reports that the ledger does not hold, and
        retry an e-mail that failed. Waits for the scheduled minute of the 1st, so that the
        cron run and this one never both write."""
        now = self.clock.wall()
        month = previous_month(now, self.tz)
        _, month_end = month_bounds(month, self.tz)
        if now < month_end + RUN_AT_MINUTE * 60:
            return []  # the cron job is about to run
        names = [s.name for s in self.settings.services]
        entries = {
            n: await asyncio.to_thread(self.store.get_state, ledger_key(n, month)) for n in names
        }
        missing = [n for n, e in entries.items() if e is None]
        paths: list[Path] = []
        if missing:
            log.debug("report catch-up: %s for %s", month, ", ".join(missing))
            paths = await self.run_month(month, missing)
        unsent = [n for n, e in entries.items() if e is not None and e.get("emailed") is False]
        if unsent and self.send_email and self._email_target() is not None:
            async with self._lock:
                files = [Path(f) for n in unsent for f in (entries[n] or {}).get("files", [])]
                now = self.clock.wall()
                reports = [
                    await asyncio.to_thread(
                        build_report, self.store, self.settings, n, month, now=now
                    )
                    for n in unsent
                ]
                await self._email(month, reports, files)
        return paths

    # ------------------------------------------------------------------ e-mail

    def _email_target(self) -> EmailConfig | None:
        rep = self.settings.report
        if not rep.email_to or rep.email_via is None:
            return None
        for n in self.settings.notifiers:
            if isinstance(n, EmailConfig) and n.name == rep.email_via:
                return n
        return None

    def _message(
        self, month: str, reports: list[dict[str, Any]], paths: list[Path], via: EmailConfig
    ) -> EmailMessage:
        verdicts = ", ".join(
            f"{r['service']} {fmt_value(r['availability_percent'])} % "
            + ("met" if r["met"] else "n/a" if r["met"] is None else "MISSED")
            for r in reports
        )
        msg = EmailMessage()
        msg["Subject"] = f"availmon availability report {month}: {verdicts}"
        msg["From"] = via.mail_from
        msg["To"] = ", ".join(self.settings.report.email_to)
        msg.set_content(render(reports, "md"))
        for path in paths:
            fmt = next((f for f, ext in EXTENSIONS.items() if path.suffix == f".{ext}"), None)
            if path.name.endswith(".json.sig"):
                fmt = "sig"
            if fmt is None or not path.exists():
                continue
            maintype, subtype = _MIME[fmt]
            msg.add_attachment(
                path.read_bytes(), maintype=maintype, subtype=subtype, filename=path.name
            )
        return msg

    async def _email(self, month: str, reports: list[dict[str, Any]], paths: list[Path]) -> None:
        via = self._email_target()
        if via is None:
            return
        error: str | None = None
        try:
            msg = await asyncio.to_thread(self._message, month, reports, paths, via)
            await send_via(via, msg)
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            # the class and the server's words only: never the credentials
            error = f"{type(exc).__name__}: {exc}"[:300]
            log.warning("report e-mail for %s via %s failed: %s", month, via.name, error)
        for r in reports:
            name = r["service"]
            entry = await asyncio.to_thread(self.store.get_state, ledger_key(name, month))
            if entry is None:
                continue
            entry["emailed"] = error is None
            entry["email_error"] = error
            await asyncio.to_thread(self.store.set_state, ledger_key(name, month), entry)
