"""The OpenAPI 3.1 description of the HTTP API, served at ``/api/v1/openapi.json``.

Kept true by tests/monitor/test_openapi.py: every route the app serves is described here
and every operation described here is served, with its parameters and error statuses.
"""

from __future__ import annotations

from typing import Any

from monitor import __version__

_ERROR = {"$ref": "#/components/responses/Error"}
_JSON = "application/json"


def _params(*names: str) -> list[dict[str, Any]]:
    return [{"$ref": f"#/components/parameters/{n}"} for n in names]


def _ok(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"description": description}
    if schema is not None:
        body["content"] = {_JSON: {"schema": schema}}
    return body


_OBJECT = {"type": "object"}
_INT = {"type": "integer"}
_NUM = {"type": "number"}
_STR = {"type": "string"}
_VERDICT = {"enum": ["available", "unavailable", "unknown"]}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _null(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` or null."""
    return {"anyOf": [schema, {"type": "null"}]}


def _obj(properties: dict[str, Any], *optional: str) -> dict[str, Any]:
    """An object with these properties, all required but `optional` ones (more may come:
    a client must ignore fields it does not know)."""
    return {
        "type": "object",
        "required": [k for k in properties if k not in optional],
        "properties": properties,
    }


#: the incident as `alerting.incidents.incident_view` renders it
INCIDENT = _obj(
    {
        "id": _INT,
        "service": _STR,
        "severity": {"enum": ["critical", "non_critical"]},
        "state": {"enum": ["open", "acknowledged", "recovered", "resolved"]},
        "kind": _STR,
        "dedup_key": _STR,
        "opened_at": _NUM,
        "acknowledged_at": _null(_NUM),
        "acknowledged_by": _null(_STR),
        "recovered_at": _null(_NUM),
        "resolved_at": _null(_NUM),
        "resolved_by": _null(_STR),
        "first_unavailable": _null(_INT),
        "last_unavailable": _null(_INT),
        "unavailable_seconds": _INT,
        "ack_due_at": _null(_NUM),
        "ack_breached_at": _null(_NUM),
        "response_due_at": _null(_NUM),
        "summary": _STR,
        "next_update_at": _null(_NUM),
        "channels": {"type": "array", "items": _STR},
        "kinds": {"type": "array", "items": _STR},
        "detail": _STR,
        "superseded_by": _INT,
    },
    "superseded_by",
)
_WRITE = {
    "security": [{"bearer": []}],
    "requestBody": {
        "required": False,
        "content": {
            _JSON: {
                "schema": {
                    "type": "object",
                    "properties": {
                        "by": {"type": "string", "maxLength": 200},
                        "note": {"type": "string"},
                        "text": {"type": "string"},
                        "at": {
                            "type": ["string", "number"],
                            "description": "callback: when the vendor called (epoch or "
                            "ISO-8601; default now)",
                        },
                    },
                }
            }
        },
    },
}


def spec() -> dict[str, Any]:
    """The whole description (a fresh dict each call)."""
    errors = {"400": _ERROR, "401": _ERROR, "403": _ERROR, "404": _ERROR}
    return {
        "openapi": "3.1.0",
        "info": {"title": "availmon", "version": __version__},
        "paths": {
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics (text exposition format)",
                    "responses": {"200": {"description": "metrics", "content": {"text/plain": {}}}},
                }
            },
            "/healthz": {
                "get": {
                    "summary": "the process is alive",
                    "responses": {"200": _ok("alive", _ref("Health"))},
                }
            },
            "/readyz": {
                "get": {
                    "summary": "ready: recent seconds, a store taking writes, launches keeping up",
                    "responses": {
                        "200": _ok("ready", {"$ref": "#/components/schemas/Ready"}),
                        "503": _ok("not ready", {"$ref": "#/components/schemas/Ready"}),
                    },
                }
            },
            "/-/reload": {
                "post": {
                    "summary": "read the config file again and apply it (as SIGHUP does)",
                    "security": [{"bearer": []}],
                    "responses": {
                        "200": _ok("applied", _ref("Reload")),
                        "401": _ERROR,
                        "403": _ERROR,
                        "409": _ERROR,
                    },
                }
            },
            "/api/v1/openapi.json": {
                "get": {"summary": "this description", "responses": {"200": _ok("it", _OBJECT)}}
            },
            "/api/v1/status": {
                "get": {
                    "summary": "per service: last seconds and month figures",
                    "responses": {"200": _ok("status", _ref("Status"))},
                }
            },
            "/api/v1/seconds": {
                "get": {
                    "summary": "per-second verdicts, vantages combined by the service's quorum",
                    "parameters": _params("serviceOne", "from", "to", "vantage"),
                    "responses": {
                        "200": _ok("seconds", {"$ref": "#/components/schemas/Seconds"}),
                        "400": _ERROR,
                    },
                }
            },
            "/api/v1/incidents": {
                "get": {
                    "summary": "incidents, newest first",
                    "parameters": _params("serviceOptional", "state", "severity", "limit"),
                    "responses": {
                        "200": _ok("incidents", _ref("IncidentList")),
                        "400": _ERROR,
                        "503": _ERROR,
                    },
                }
            },
            "/api/v1/incidents/{id}": {
                "get": {
                    "summary": "one incident with its timeline and notifications",
                    "parameters": _params("id"),
                    "responses": {
                        "200": _ok("incident", _ref("IncidentDetail")),
                        "400": _ERROR,
                        "404": _ERROR,
                        "503": _ERROR,
                    },
                }
            },
            **{
                f"/api/v1/incidents/{{id}}/{action}": {
                    "post": {
                        "summary": summary,
                        "parameters": _params("id"),
                        **_WRITE,
                        "responses": {
                            "200": _ok("the incident", _ref("IncidentDetail")),
                            **errors,
                            "409": _ERROR,
                            "503": _ERROR,
                        },
                    }
                }
                for action, summary in (
                    ("ack", "acknowledge"),
                    ("resolve", "resolve (mutual agreement)"),
                    ("notes", "add a note"),
                    ("callback", "record the vendor's callback on a Critical Issue"),
                )
            },
            **{
                f"/api/v2/{name}": {
                    "get": {
                        "summary": f"Statuspage-compatible {what} (public)",
                        "responses": {"200": _ok(what, _OBJECT), "503": _ERROR},
                    }
                }
                for name, what in (
                    ("summary.json", "summary"),
                    ("status.json", "overall status"),
                    ("components.json", "components"),
                    ("incidents.json", "incidents"),
                    ("incidents/unresolved.json", "unresolved incidents"),
                    ("scheduled-maintenances.json", "scheduled maintenances"),
                    ("scheduled-maintenances/upcoming.json", "upcoming maintenances"),
                    ("scheduled-maintenances/active.json", "active maintenances"),
                )
            },
            "/api/v1/incidents/{id}/case": {
                "get": {
                    "summary": "the Sev-1 case sheet of a Critical Issue (JSON, or text)",
                    "parameters": _params("id", "caseFormat"),
                    "responses": {
                        "200": {
                            "description": "the case sheet",
                            "content": {
                                _JSON: {"schema": _ref("Case")},
                                "text/plain": {"schema": {"type": "string"}},
                            },
                        },
                        "400": _ERROR,
                        "404": _ERROR,
                        "409": _ERROR,
                        "503": _ERROR,
                    },
                }
            },
            "/api/v1/reports/{month}": {
                "get": {
                    "summary": "the monthly report",
                    "parameters": _params("month", "serviceOptional", "format"),
                    "responses": {
                        "200": {
                            "description": "the report in the format asked",
                            "content": {
                                _JSON: {"schema": _OBJECT},
                                "text/csv": {"schema": {"type": "string"}},
                                "text/markdown": {"schema": {"type": "string"}},
                                "text/html": {"schema": {"type": "string"}},
                            },
                        },
                        "400": _ERROR,
                    },
                }
            },
            "/api/v1/maintenance": {
                "get": {
                    "summary": "maintenance windows",
                    "parameters": _params("serviceOptional"),
                    "responses": {"200": _ok("windows", _ref("MaintenanceList")), "400": _ERROR},
                },
                "post": {
                    "summary": "add a maintenance window",
                    "security": [{"bearer": []}],
                    "requestBody": {
                        "required": True,
                        "content": {
                            _JSON: {
                                "schema": {
                                    "type": "object",
                                    "required": ["start", "end"],
                                    "properties": {
                                        "service": {"type": "string"},
                                        "start": {
                                            "type": ["string", "number"],
                                            "description": "epoch, or ISO-8601 with offset",
                                        },
                                        "end": {
                                            "type": ["string", "number"],
                                            "description": "epoch, or ISO-8601 with offset",
                                        },
                                        "reason": {"type": "string"},
                                    },
                                }
                            }
                        },
                    },
                    "responses": {
                        "201": _ok(
                            "the window, with warnings (windows it overlaps)",
                            {
                                "allOf": [
                                    _ref("Maintenance"),
                                    _obj({"warnings": {"type": "array", "items": _STR}}),
                                ]
                            },
                        ),
                        **errors,
                    },
                },
            },
            "/api/v1/maintenance/{id}": {
                "delete": {
                    "summary": "remove a maintenance window",
                    "security": [{"bearer": []}],
                    "parameters": _params("id"),
                    "responses": {"200": _ok("removed", _ref("Removed")), **errors},
                }
            },
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "responses": {
                "Error": {
                    "description": "one line saying what is wrong",
                    "content": {_JSON: {"schema": {"$ref": "#/components/schemas/Error"}}},
                }
            },
            "parameters": {
                "serviceOne": {
                    "name": "service",
                    "in": "query",
                    "required": False,
                    "description": "the service; may be left out when only one is configured",
                    "schema": {"type": "string"},
                },
                "serviceOptional": {
                    "name": "service",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "string"},
                },
                "from": {
                    "name": "from",
                    "in": "query",
                    "required": False,
                    "description": "epoch seconds or ISO-8601 (default: an hour ago)",
                    "schema": {"type": "string"},
                },
                "to": {
                    "name": "to",
                    "in": "query",
                    "required": False,
                    "description": "epoch seconds or ISO-8601 (default: now); at most 7 "
                    "days after from",
                    "schema": {"type": "string"},
                },
                "vantage": {
                    "name": "vantage",
                    "in": "query",
                    "required": False,
                    "description": "one vantage's own verdicts, not combined",
                    "schema": {"type": "string"},
                },
                "state": {
                    "name": "state",
                    "in": "query",
                    "required": False,
                    "schema": {"enum": ["open", "acknowledged", "recovered", "resolved"]},
                },
                "severity": {
                    "name": "severity",
                    "in": "query",
                    "required": False,
                    "schema": {"enum": ["critical", "non_critical"]},
                },
                "limit": {
                    "name": "limit",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
                },
                "id": {
                    "name": "id",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1},
                },
                "month": {
                    "name": "month",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$"},
                },
                "format": {
                    "name": "format",
                    "in": "query",
                    "required": False,
                    "schema": {"enum": ["json", "csv", "md", "html"]},
                },
                "caseFormat": {
                    "name": "format",
                    "in": "query",
                    "required": False,
                    "schema": {"enum": ["json", "text"]},
                },
            },
            "schemas": {
                "Case": _obj(
                    {
                        "incident_id": _INT,
                        "dedup_key": _STR,
                        "service": _STR,
                        "description": _STR,
                        "company": _null(_STR),
                        "contact_name": _null(_STR),
                        "contact_phone": _null(_STR),
                        "contact_email": _null(_STR),
                        "account_id": _null(_STR),
                        "vendor_phone": _null(_STR),
                        "vendor_email": _null(_STR),
                        "opened_at": _NUM,
                        "callback_due_at": _NUM,
                        "stored": {"type": "boolean"},
                        "callback": _null(_OBJECT),
                    }
                ),
                "Health": _obj({"status": {"const": "ok"}, "version": _STR}),
                "Status": _obj(
                    {
                        "vantage": _STR,
                        "version": _STR,
                        "started_at": _NUM,
                        "now": _NUM,
                        "ready": {"type": "boolean"},
                        "ready_reason": _STR,
                        "services": {"type": "array", "items": _ref("ServiceStatus")},
                    }
                ),
                "ServiceStatus": _obj(
                    {
                        "name": _STR,
                        "last_final_second": _null(_INT),
                        "stored_through": _null(_INT),
                        "verdicts": {
                            "type": "object",
                            "description": "per channel (and 'service'): the last stored verdict",
                            "additionalProperties": _null(
                                _obj(
                                    {
                                        "second": _INT,
                                        "verdict": _VERDICT,
                                        "reason": _null(_STR),
                                        "degraded": {"type": "boolean"},
                                        "excluded": {"type": "boolean"},
                                    }
                                )
                            ),
                        },
                        "month_unavailable_seconds": _null(_NUM),
                        "month_error_budget_seconds": _null(_NUM),
                        "slo_target_percent": _NUM,
                    }
                ),
                "Incident": INCIDENT,
                "IncidentList": _obj({"incidents": {"type": "array", "items": _ref("Incident")}}),
                "IncidentDetail": _obj(
                    {
                        "incident": _ref("Incident"),
                        "timeline": {
                            "type": "array",
                            "items": _obj({"id": _INT, "at": _NUM, "kind": _STR, "data": _OBJECT}),
                        },
                        "notifications": {
                            "type": "array",
                            "items": _obj(
                                {
                                    "id": _INT,
                                    "notifier": _STR,
                                    "event": _STR,
                                    "tier": _null(_STR),
                                    "seq": _null(_INT),
                                    "state": _STR,
                                    "tries": _INT,
                                    "created_at": _NUM,
                                    "next_attempt_at": _null(_NUM),
                                    "sent_at": _null(_NUM),
                                    "last_error": _null(_STR),
                                }
                            ),
                        },
                    }
                ),
                "Maintenance": _obj(
                    {
                        "id": _INT,
                        "service": _STR,
                        "start": _INT,
                        "end": _INT,
                        "reason": _STR,
                        "source": {"enum": ["api", "config"]},
                    }
                ),
                "MaintenanceList": _obj(
                    {"maintenance": {"type": "array", "items": _ref("Maintenance")}}
                ),
                "Removed": _obj({"removed": _INT}),
                "Reload": _obj(
                    {
                        "status": {"enum": ["applied"]},
                        "message": _STR,
                        "changes": _obj(
                            {
                                "added": {"type": "array", "items": _STR},
                                "removed": {"type": "array", "items": _STR},
                                "changed": {"type": "array", "items": _STR},
                                "notifiers_changed": {"type": "boolean"},
                                "other": {"type": "array", "items": _STR},
                            }
                        ),
                        "measured_from": _INT,
                    }
                ),
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {"error": {"type": "string"}},
                },
                "Ready": {
                    "type": "object",
                    "required": ["ready", "reason"],
                    "properties": {"ready": {"type": "boolean"}, "reason": {"type": "string"}},
                },
                "Seconds": {
                    "type": "object",
                    "required": ["service", "from", "to", "seconds"],
                    "properties": {
                        "service": {"type": "string"},
                        "from": {"type": "integer"},
                        "to": {"type": "integer"},
                        "vantage": {"type": "string"},
                        "seconds": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["t", "verdict", "api", "smtp"],
                                "properties": {
                                    "t": {"type": "integer"},
                                    **{
                                        k: {"enum": ["available", "unavailable", "unknown"]}
                                        for k in ("verdict", "api", "smtp")
                                    },
                                },
                            },
                        },
                    },
                },
            },
        },
    }
