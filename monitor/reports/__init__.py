"""The monthly availability report.

The numbers (`compute`), the formats (`render`) and the monthly job (`schedule`).
"""

from monitor.intervals import month_bounds, previous_month
from monitor.reports.compute import REPORT_KEYS, build_report
from monitor.reports.render import render, warm
from monitor.reports.schedule import ReportJob, write_reports

__all__ = [
    "REPORT_KEYS",
    "ReportJob",
    "build_report",
    "month_bounds",
    "previous_month",
    "render",
    "warm",
    "write_reports",
]
