"""Configuration: a TOML file validated by pydantic-settings, secrets from env or files.

A bad config fails at start with one line naming the TOML path of the bad field, e.g.
``config.toml: services[0].probes[1].timeout_seconds: Input should be greater than 0``.

Secrets are never written in the file itself in a real deployment: a secret field takes
``"env:NAME"`` (read from the environment) or ``"file:/path"`` (first line of a file). They
are held as `SecretStr`, so they print as ``**********`` in logs, metrics and API output.
Any field can also be overridden from the environment: ``AVAILMON_MONITOR__LISTEN=...``.
"""

from __future__ import annotations

import os
import socket
import tomllib
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from probes.base import Outcome


class ConfigError(Exception):
    """A config that cannot work; `str()` is the one-line message to print."""


def resolve_secret(value: str, where: str = "") -> str:
    """`env:NAME` → the variable, `file:PATH` → the file's first line, else the value."""
    if value.startswith("env:"):
        name = value[4:]
        if name not in os.environ:
            raise ValueError(f"environment variable {name} is not set")
        return os.environ[name]
    if value.startswith("file:"):
        path = Path(value[5:]).expanduser()
        try:
            text = path.read_text()
        except OSError as exc:
            raise ValueError(f"cannot read secret file {path}: {exc.strerror}") from None
        return text.splitlines()[0].strip() if text.strip() else ""
    return value


def _secret(value: Any) -> Any:
    if isinstance(value, str):
        return SecretStr(resolve_secret(value))
    return value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Secret = Annotated[SecretStr, Field(json_schema_extra={"secret": True})]


# ----------------------------------------------------------------------------- probes


class ProbeBase(_Model):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.:-]+$")
    channel: Literal["api", "smtp", "control"]
    attempts_per_second: int = Field(default=2, ge=1, le=1000)
    timeout_seconds: float = Field(default=5.0, gt=0, le=120)
    #: fraction of a second added to every slot, so that probes do not all fire at once;
    #: None spreads probes of a service automatically
    phase_offset: float | None = Field(default=None, ge=0, lt=1)
    reuse_connections: bool = False
    enabled: bool = True
    #: classification overrides: key is an HTTP status ("503", "5xx") or an SMTP reply
    #: code ("421") or enhanced code ("4.7.1", "5.3"), value the outcome it means
    classify: dict[str, Outcome] = Field(default_factory=dict)

    @field_validator("classify")
    @classmethod
    def _classify_keys(cls, v: dict[str, Outcome]) -> dict[str, Outcome]:
        import re

        for key in v:
            if not re.fullmatch(r"[1-5](\d\d|xx)|[245](\.\d{1,3}){1,2}", key):
                raise ValueError(f"classify key {key!r} is not a status code, 'Nxx' or x.y.z")
        return v


class HttpProbeConfig(ProbeBase):
    type: Literal["http"] = "http"
    channel: Literal["api", "smtp", "control"] = "api"
    url: str = Field(pattern=r"^https?://")
    method: Literal["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"] = "GET"
    #: header values may be secrets (`env:NAME`), e.g. Authorization = "env:SPARKPOST_API_KEY"
    headers: dict[str, SecretStr] = Field(default_factory=dict)
    body: str | None = None
    expect_status: list[int] = Field(default_factory=lambda: list(range(200, 300)))
    verify_tls: bool = True
    ca_file: Path | None = None

    @field_validator("headers", mode="before")
    @classmethod
    def _headers(cls, v: Any) -> Any:
        if isinstance(v, dict):
            return {k: _secret(val) for k, val in v.items()}
        return v

    @field_validator("expect_status")
    @classmethod
    def _statuses(cls, v: list[int]) -> list[int]:
        bad = [s for s in v if not 100 <= s <= 599]
        if bad or not v:
            raise ValueError("expect_status needs HTTP status codes between 100 and 599")
        return v


SmtpDepth = Literal["connect", "ehlo", "starttls", "auth", "mail", "rcpt", "data"]
SMTP_DEPTHS: tuple[str, ...] = ("connect", "ehlo", "starttls", "auth", "mail", "rcpt", "data")


class SmtpProbeConfig(ProbeBase):
    type: Literal["smtp"] = "smtp"
    channel: Literal["api", "smtp", "control"] = "smtp"
    timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    host: str = Field(min_length=1)
    port: int = Field(default=587, ge=1, le=65535)
    tls: Literal["starttls", "implicit", "none"] = "starttls"
    verify_tls: bool = True
    ca_file: Path | None = None
    username: str | None = None
    password: SecretStr | None = None
    ehlo_name: str | None = None
    mail_from: str = "availmon@localhost"
    rcpt_to: str = "probe@availmon.sink.sparkpostmail.com"
    subject: str = "availmon probe"
    #: extra headers in the probe message (e.g. X-MSYS-API for campaign ids)
    message_headers: dict[str, str] = Field(default_factory=dict)
    depth: SmtpDepth = "data"

    @field_validator("password", mode="before")
    @classmethod
    def _password(cls, v: Any) -> Any:
        return _secret(v)

    @model_validator(mode="after")
    def _auth_pairs(self) -> SmtpProbeConfig:
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together")
        if self.depth == "starttls" and self.tls != "starttls":
            raise ValueError("depth 'starttls' needs tls = 'starttls'")
        if self.depth == "auth" and self.username is None:
            raise ValueError("depth 'auth' needs username and password")
        return self


ProbeConfig = Annotated[HttpProbeConfig | SmtpProbeConfig, Field(discriminator="type")]


# ----------------------------------------------------------------------------- issues


class CriticalConfig(_Model):
    window_seconds: int = Field(default=60, ge=1, le=86400)
    min_unavailable_seconds: int = Field(default=30, ge=1)
    recover_after_seconds: int = Field(default=120, ge=1)
    reopen_within_seconds: int = Field(default=3600, ge=0)
    ack_within_minutes: float = Field(default=15, gt=0)
    update_every_minutes: float = Field(default=30, gt=0)
    #: resolve automatically after this long recovered; None (default): a person resolves
    auto_resolve_after_minutes: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _fits(self) -> CriticalConfig:
        if self.min_unavailable_seconds > self.window_seconds:
            raise ValueError("min_unavailable_seconds cannot exceed window_seconds")
        return self


class NonCriticalConfig(_Model):
    enabled: bool = True
    window_seconds: int = Field(default=900, ge=1, le=86400)
    #: unavailable seconds in the window that open a Non-Critical Issue (short of Critical)
    min_unavailable_seconds: int = Field(default=1, ge=1)
    failure_ratio: float = Field(default=0.05, gt=0, le=1)
    blind_after_seconds: int = Field(default=300, ge=1)
    #: response due, counted in business hours of the Service Time Zone
    respond_within_business_hours: float = Field(default=8, gt=0)
    #: resolved automatically once the condition has been absent this long (None: never)
    auto_resolve_after_minutes: float | None = Field(default=60, gt=0)


class ServiceConfig(_Model):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    combine: Literal["any", "all"] = "any"
    slo_target_percent: float = Field(default=99.99, gt=0, lt=100)
    #: the Service Time Zone of Business Hours: 09:00-17:00 ET / PT, 08:30-16:30 UK
    service_time_zone: Literal["ET", "PT", "UK"] = "ET"
    #: US bank holidays: "federal_reserve" (XFED calendar) or "federal" (US federal)
    us_holidays: Literal["federal_reserve", "federal"] = "federal_reserve"
    #: vantage points that must agree for a multi-vantage unavailable second (None: all)
    quorum: int | None = Field(default=None, ge=1)
    critical: CriticalConfig = CriticalConfig()
    non_critical: NonCriticalConfig = NonCriticalConfig()
    probes: list[ProbeConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_probes(self) -> ServiceConfig:
        names = [p.name for p in self.probes]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"probe names must be unique, repeated: {sorted(dup)}")
        if not any(p.channel in ("api", "smtp") for p in self.probes if p.enabled):
            raise ValueError("a service needs at least one enabled api or smtp probe")
        return self

    @property
    def channels(self) -> list[str]:
        seen: list[str] = []
        for p in self.probes:
            if p.enabled and p.channel != "control" and p.channel not in seen:
                seen.append(p.channel)
        return sorted(seen)

    @property
    def max_timeout(self) -> float:
        return max(p.timeout_seconds for p in self.probes if p.enabled)


# ----------------------------------------------------------------------------- notifiers

Tier = Literal["critical", "escalation", "ticket"]


class NotifierBase(_Model):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    tiers: list[Tier] = Field(default_factory=lambda: list[Tier](["critical"]), min_length=1)
    #: services whose incidents this notifier receives (None: all)
    services: list[str] | None = None
    timeout_seconds: float = Field(default=10, gt=0, le=120)
    #: give up (and record a permanent failure) after this many tries
    max_tries: int = Field(default=12, ge=1, le=1000)


class PagerDutyConfig(NotifierBase):
    type: Literal["pagerduty"] = "pagerduty"
    routing_key: SecretStr
    url: str = Field(default="https://events.pagerduty.com/v2/enqueue", pattern=r"^https?://")
    severity: Literal["critical", "error", "warning", "info"] = "critical"
    _sec = field_validator("routing_key", mode="before")(classmethod(lambda cls, v: _secret(v)))


class OpsgenieConfig(NotifierBase):
    type: Literal["opsgenie"] = "opsgenie"
    api_key: SecretStr
    url: str = Field(default="https://api.opsgenie.com", pattern=r"^https?://")
    priority: Literal["P1", "P2", "P3", "P4", "P5"] = "P1"
    responders: list[dict[str, str]] = Field(default_factory=list)
    _sec = field_validator("api_key", mode="before")(classmethod(lambda cls, v: _secret(v)))


class AlertmanagerConfig(NotifierBase):
    type: Literal["alertmanager"] = "alertmanager"
    url: str = Field(pattern=r"^https?://")  # e.g. http://127.0.0.1:9093
    resend_every_seconds: float = Field(default=60, ge=5, le=600)
    labels: dict[str, str] = Field(default_factory=dict)


class SlackConfig(NotifierBase):
    type: Literal["slack"] = "slack"
    webhook_url: SecretStr
    _sec = field_validator("webhook_url", mode="before")(classmethod(lambda cls, v: _secret(v)))


class WebhookConfig(NotifierBase):
    type: Literal["webhook"] = "webhook"
    url: str = Field(pattern=r"^https?://")
    #: HMAC-SHA256 key; the signature goes in header X-Availmon-Signature: sha256=<hex>
    secret: SecretStr | None = None
    headers: dict[str, SecretStr] = Field(default_factory=dict)
    _sec = field_validator("secret", mode="before")(classmethod(lambda cls, v: _secret(v)))

    @field_validator("headers", mode="before")
    @classmethod
    def _headers(cls, v: Any) -> Any:
        if isinstance(v, dict):
            return {k: _secret(val) for k, val in v.items()}
        return v


class EmailConfig(NotifierBase):
    type: Literal["email"] = "email"
    host: str
    port: int = Field(default=587, ge=1, le=65535)
    tls: Literal["starttls", "implicit", "none"] = "starttls"
    verify_tls: bool = True
    username: str | None = None
    password: SecretStr | None = None
    mail_from: str
    to: list[str] = Field(min_length=1)
    _sec = field_validator("password", mode="before")(classmethod(lambda cls, v: _secret(v)))


NotifierConfig = Annotated[
    PagerDutyConfig
    | OpsgenieConfig
    | AlertmanagerConfig
    | SlackConfig
    | WebhookConfig
    | EmailConfig,
    Field(discriminator="type"),
]


# ----------------------------------------------------------------------------- the rest


class MaintenanceConfig(_Model):
    """A scheduled maintenance window: its seconds are excluded from the SLA and policies."""

    service: str = "*"
    start: datetime
    end: datetime
    reason: str = ""

    @model_validator(mode="after")
    def _order(self) -> MaintenanceConfig:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("start and end need a time zone offset (e.g. 2026-01-01T02:00Z)")
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class MonitorConfig(_Model):
    #: the name of this vantage point, carried by every verdict
    vantage: str = Field(default_factory=socket.gethostname, min_length=1)
    #: HTTP listener for /metrics, /healthz, /readyz and /api/v1
    listen: str = Field(default="127.0.0.1:9310", pattern=r"^[^:]+:\d+$|^\[.+\]:\d+$")
    max_launch_lag_ms: float = Field(default=50, gt=0, le=1000)
    #: an event-loop stall longer than this that overlaps an attempt makes a timeout of
    #: that attempt the monitor's fault (probe_error / monitor_stalled)
    stall_threshold_ms: float = Field(default=100, gt=0, le=10000)
    #: bearer token for POST /api/v1/... (None: write endpoints are off)
    api_token: SecretStr | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    _sec = field_validator("api_token", mode="before")(classmethod(lambda cls, v: _secret(v)))

    @property
    def host_port(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)


class StoreConfig(_Model):
    #: sqlite:///relative/or/absolute/path.db  (postgresql:// is the scale-out backend)
    url: str = Field(
        default="sqlite:///availmon-data/availmon.db", pattern=r"^(sqlite|postgresql)://"
    )
    #: keep per-attempt evidence, per-minute counts and the delivered notifications of
    #: resolved incidents this long (verdict runs and incidents are kept)
    evidence_retention_days: int = Field(default=400, ge=1)


ReportFormat = Literal["json", "csv", "md", "html"]


class CreditTier(_Model):
    below_percent: float = Field(gt=0, le=100)
    credit_percent: float = Field(ge=0, le=100)


class ReportConfig(_Model):
    timezone: str = "UTC"
    dir: Path = Path("availmon-data/reports")
    formats: list[ReportFormat] = Field(
        default_factory=lambda: list[ReportFormat](["json", "html"])
    )
    #: outages closer than this many seconds are one outage in the report
    merge_gap_seconds: int = Field(default=0, ge=0)
    #: service credit tiers: the lowest tier whose `below_percent` exceeds availability
    credits: list[CreditTier] = Field(default_factory=list)
    email_to: list[str] = Field(default_factory=list)
    #: name of an `email` notifier whose SMTP settings send the reports
    email_via: str | None = None

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r}") from None
        return v


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="AVAILMON_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    monitor: MonitorConfig = MonitorConfig()
    store: StoreConfig = StoreConfig()
    report: ReportConfig = ReportConfig()
    services: list[ServiceConfig] = Field(min_length=1)
    notifiers: list[NotifierConfig] = Field(default_factory=list)
    maintenance: list[MaintenanceConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _references(self) -> Settings:
        names = [s.name for s in self.services]
        if len(set(names)) != len(names):
            raise ValueError("service names must be unique")
        nnames = [n.name for n in self.notifiers]
        if len(set(nnames)) != len(nnames):
            raise ValueError("notifier names must be unique")
        for n in self.notifiers:
            for s in n.services or []:
                if s not in names:
                    raise ValueError(f"notifier {n.name!r} names unknown service {s!r}")
        for m in self.maintenance:
            if m.service != "*" and m.service not in names:
                raise ValueError(f"maintenance names unknown service {m.service!r}")
        if self.report.email_via is not None and self.report.email_via not in [
            n.name for n in self.notifiers if n.type == "email"
        ]:
            raise ValueError("report.email_via must name an email notifier")
        return self

    def service(self, name: str) -> ServiceConfig:
        for s in self.services:
            if s.name == name:
                return s
        raise KeyError(name)


def _toml_path(loc: tuple[int | str, ...]) -> str:
    """('services', 0, 'probes', 1, 'http', 'timeout') → services[0].probes[1].timeout"""
    out = ""
    tags = {"http", "smtp", "pagerduty", "opsgenie", "alertmanager", "slack", "webhook", "email"}
    for i, part in enumerate(loc):
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in tags and i > 0 and isinstance(loc[i - 1], int):
            continue  # the discriminated-union tag pydantic inserts
        elif part.startswith("function-"):
            continue
        else:
            out += ("." if out else "") + part
    return out or "(top level)"


def format_validation_error(source: str, exc: ValidationError) -> str:
    err = exc.errors()[0]
    msg = err["msg"].removeprefix("Value error, ")
    more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    return f"{source}: {_toml_path(tuple(err['loc']))}: {msg}{more}"


def parse(data: dict[str, Any], source: str = "config") -> Settings:
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(source, exc)) from None


def load(path: str | Path) -> Settings:
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse(data, str(path))
