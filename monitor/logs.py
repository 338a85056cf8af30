"""Log output: the standard `logging` module, as text lines or one JSON object a line.

``availmon run --log-format json`` (or ``monitor.log_format = "json"``) writes each record
as one JSON object with the usual fields — ``time`` (UTC, ISO 8601 with milliseconds),
``level``, ``logger``, ``message`` — plus ``service`` and ``incident`` when the record
carries them (incident transitions and deliveries do, through ``extra=``), and ``exc``
(the exception, one string) for an unexpected error. Log shippers (Loki, Elasticsearch,
journald's JSON mode) take it as is.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Literal

LogFormat = Literal["text", "json"]
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: record attributes (set with ``extra=``) copied into a JSON line
CONTEXT = ("service", "incident", "notifier")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in CONTEXT:
            value = getattr(record, key, None)
            if value is not None:
                line[key] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def setup(level: str = "INFO", fmt: LogFormat = "text") -> None:
    """Configure the root logger once for the process (stderr)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(getattr(logging, level))
    # APScheduler logs every job addition and run at INFO: noise next to our own lines
    logging.getLogger("apscheduler").setLevel(max(logging.WARNING, getattr(logging, level)))
