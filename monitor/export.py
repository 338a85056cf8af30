"""The SLO as other tools declare it: OpenSLO v1 and Sloth `prometheus/v1` (`availmon export`).

Both state the contract's objective over the daemon's own metric, per service: the
seconds the leader's combined verdict (vantage="combined", channel="service") did not
call unavailable, of every second except maintenance (verdict="excluded"). Unknown
seconds count as not unavailable, as the contract counts them.

Pure functions of the settings; the output is YAML written by ``to_yaml``, a small
emitter for these plain structures (mappings, lists, strings, numbers, booleans), so
that the daemon needs no YAML library. Every string is double-quoted, which YAML and
Sloth's format detection (``^version: "prometheus/v1"``) both read.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

from monitor.config import ServiceConfig, Settings

METRIC = "availmon_seconds_total"
#: what every availmon series of a rate keeps (grafana/prometheus/rules/recording.yml):
#: a failover moves the combined series to another instance, the sum adds both parts
_WITHOUT = "sum without (instance, vantage, verdict)"
#: any calendar month's first second serves: the window is a calendar month from then
_CALENDAR_START = "2024-01-01 00:00:00"
_RFC1123 = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SLOTH_NAME = re.compile(r"^[A-Za-z0-9][-A-Za-z0-9_.]*[A-Za-z0-9]$")


def _selector(service: str, verdict: str) -> str:
    return f'{METRIC}{{service="{service}", channel="service", vantage="combined", {verdict}}}'


def _ratio(percent: float) -> float:
    """99.99 -> 0.9999 exactly as written (99.99 / 100 is 0.9998999999999999)."""
    return float(Decimal(repr(percent)) / 100)


def _services(settings: Settings, names: list[str] | None) -> list[ServiceConfig]:
    known = {s.name: s for s in settings.services}
    for n in names or []:
        if n not in known:
            raise ValueError(f"unknown service {n!r}")
    return [known[n] for n in names] if names else list(settings.services)


def _openslo_name(service: str) -> str:
    name = re.sub(r"[_.]", "-", service.lower())
    if not _RFC1123.fullmatch(name):
        raise ValueError(f"service {service!r}: {name!r} is not an OpenSLO (RFC 1123) name")
    return name


def openslo_documents(settings: Settings, names: list[str] | None = None) -> list[dict[str, Any]]:
    """One OpenSLO v1 `kind: SLO` a service: Timeslices of 1 s, each second good when its
    verdict was not unavailable, over a calendar month in the report time zone."""
    docs: list[dict[str, Any]] = []
    seen: dict[str, str] = {}
    for svc in _services(settings, names):
        name = _openslo_name(svc.name)
        if name in seen:
            raise ValueError(
                f"services {seen[name]!r} and {svc.name!r} have the same OpenSLO name {name!r}"
            )
        seen[name] = svc.name

        def source(verdict: str, svc: ServiceConfig = svc) -> dict[str, Any]:
            query = f"{_WITHOUT} ({_selector(svc.name, verdict)})"
            return {"metricSource": {"type": "Prometheus", "spec": {"query": query}}}

        docs.append(
            {
                "apiVersion": "openslo/v1",
                "kind": "SLO",
                "metadata": {"name": f"{name}-availability", "displayName": f"{svc.name} SLA"},
                "spec": {
                    "description": (
                        f"availmon: the seconds {svc.name} was not unavailable (available or "
                        "unknown) of every second but maintenance, by the combined verdict, "
                        "in a calendar month of the report time zone"
                    ),
                    # a name of kind Service in OpenSLO: RFC 1123, as the metadata names
                    "service": name,
                    "indicator": {
                        "metadata": {"name": f"{name}-seconds-not-unavailable"},
                        "spec": {
                            "ratioMetric": {
                                "counter": True,
                                "good": source('verdict=~"available|unknown"'),
                                "total": source('verdict!="excluded"'),
                            }
                        },
                    },
                    "timeWindow": [
                        {
                            "duration": "1M",
                            "isRolling": False,
                            "calendar": {
                                "startTime": _CALENDAR_START,
                                "timeZone": settings.report.timezone,
                            },
                        }
                    ],
                    "budgetingMethod": "Timeslices",
                    "objectives": [
                        {
                            "displayName": "SLA",
                            "target": _ratio(svc.slo_target_percent),
                            "timeSliceTarget": 1,
                            "timeSliceWindow": "1s",
                        }
                    ],
                },
            }
        )
    return docs


def sloth_specs(settings: Settings, names: list[str] | None = None) -> list[dict[str, Any]]:
    """One Sloth `prometheus/v1` spec a service (Sloth's `service` is one per spec): the
    error ratio unavailable / (every second but maintenance) over Sloth's windows."""
    specs: list[dict[str, Any]] = []
    for svc in _services(settings, names):
        if not _SLOTH_NAME.fullmatch(svc.name):
            raise ValueError(f"service {svc.name!r}: not a Sloth name ({_SLOTH_NAME.pattern})")

        def rate(verdict: str, svc: ServiceConfig = svc) -> str:
            return f"{_WITHOUT} (rate({_selector(svc.name, verdict)}[{{{{.window}}}}]))"

        specs.append(
            {
                "version": "prometheus/v1",
                "service": svc.name,
                "slos": [
                    {
                        "name": "availability",
                        "objective": float(Decimal(repr(svc.slo_target_percent))),
                        "description": (
                            f"availmon: seconds {svc.name} was unavailable, of every second "
                            "but maintenance, by the combined verdict"
                        ),
                        "sli": {
                            "events": {
                                "error_query": rate('verdict="unavailable"'),
                                "total_query": rate('verdict!="excluded"'),
                            }
                        },
                        "alerting": {
                            "name": "AvailmonSLOErrorBudgetBurn",
                            "labels": {"category": "availability"},
                            "page_alert": {"labels": {"severity": "page"}},
                            "ticket_alert": {"labels": {"severity": "ticket"}},
                        },
                    }
                ],
            }
        )
    return specs


def _scalar(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string is a YAML double-quoted scalar
    if v is None:
        return "null"
    raise TypeError(f"cannot write {type(v).__name__} as YAML")


def _lines(v: Any, indent: int) -> list[str]:
    pad = " " * indent
    out: list[str] = []
    if isinstance(v, dict):
        for k, x in v.items():
            key = k if _PLAIN_KEY.fullmatch(k) else _scalar(str(k))
            if isinstance(x, (dict, list)) and x:
                out.append(f"{pad}{key}:")
                out.extend(_lines(x, indent + 2))
            else:
                out.append(f"{pad}{key}: {_empty(x)}")
    elif isinstance(v, list):
        for x in v:
            if isinstance(x, (dict, list)) and x:
                inner = _lines(x, indent + 2)
                out.append(f"{pad}- {inner[0][indent + 2 :]}")
                out.extend(inner[1:])
            else:
                out.append(f"{pad}- {_empty(x)}")
    else:
        out.append(pad + _scalar(v))
    return out


def _empty(x: Any) -> str:
    if isinstance(x, dict):
        return "{}"
    if isinstance(x, list):
        return "[]"
    return _scalar(x)


def to_yaml(documents: list[dict[str, Any]]) -> str:
    """The documents as one YAML stream, `---` between them."""
    return "---\n".join("\n".join(_lines(d, 0)) + "\n" for d in documents)
