"""Configuration: a TOML file validated by pydantic-settings, secrets from env or files.

A bad config fails at start with one line naming the TOML path of the bad field, e.g.
``config.toml: services[0].probes[1].timeout_seconds: Input should be greater than 0``.

Each probe type and each notifier type owns its config model beside its implementation
(`probes/http.py`, `alerting/notifiers/slack.py`, ...); this module assembles the
discriminated unions on ``type`` from the two registries (`probes.PROBES`,
`alerting.notifiers.NOTIFIERS`), so a new type is one module plus one registry line.
Secret references (``env:NAME``, ``file:PATH``) are resolved by `monitor.schema`.
Any field can also be set from the environment, and the environment wins over the file
(the twelve-factor habit): ``AVAILMON_MONITOR__LISTEN=127.0.0.1:9311``, nested fields
joined by ``__``, lists as JSON. A bad value there fails with the variable's name.
"""

from __future__ import annotations

import os
import re
import socket
import tomllib
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from alerting.notifiers import NOTIFIERS
from alerting.notifiers.base import NotifierBase, Tier
from alerting.notifiers.email import EmailConfig
from monitor.schema import ConfigError, ConfigModel, is_reference, resolve_secret, secret
from monitor.verdicts import COMBINED
from probes import PROBES
from probes.base import ProbeBase
from probes.dnsbl import DnsblConfig
from probes.http import HttpProbeConfig
from probes.smtp import SMTP_DEPTHS, SmtpProbeConfig

__all__ = [
    "SMTP_DEPTHS",
    "ConfigError",
    "DnsblConfig",
    "EmailConfig",
    "HttpProbeConfig",
    "NotifierBase",
    "ProbeBase",
    "Settings",
    "SmtpProbeConfig",
    "Tier",
    "load",
    "parse",
    "resolve_secret",
]


#: the config models, one per registered type, in registry order
PROBE_MODELS: tuple[type[ProbeBase], ...] = tuple(p.config_model for p in PROBES.values())
NOTIFIER_MODELS: tuple[type[NotifierBase], ...] = tuple(n.config_model for n in NOTIFIERS.values())

if TYPE_CHECKING:
    ProbeConfig = ProbeBase
    NotifierConfig = NotifierBase
else:
    ProbeConfig = Annotated[Union[PROBE_MODELS], Field(discriminator="type")]  # noqa: UP007
    NotifierConfig = Annotated[Union[NOTIFIER_MODELS], Field(discriminator="type")]  # noqa: UP007


# ----------------------------------------------------------------------------- issues


class CriticalConfig(ConfigModel):
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


class NonCriticalConfig(ConfigModel):
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


class ServiceConfig(ConfigModel):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    combine: Literal["any", "all"] = "any"
    slo_target_percent: float = Field(default=99.99, gt=0, lt=100)
    #: the Service Time Zone of Business Hours: 09:00-17:00 ET / PT, 08:30-16:30 UK
    service_time_zone: Literal["ET", "PT", "UK"] = "ET"
    #: US bank holidays: "federal_reserve" (XFED calendar) or "federal" (US federal)
    us_holidays: Literal["federal_reserve", "federal"] = "federal_reserve"
    #: how many of the vantage points that measured a second must say it was unavailable:
    #: "all" (None, the default), "majority", or a number (monitor/quorum.py)
    quorum: Annotated[int, Field(ge=1)] | Literal["all", "majority"] | None = None
    critical: CriticalConfig = CriticalConfig()
    non_critical: NonCriticalConfig = NonCriticalConfig()
    probes: list[ProbeConfig] = Field(min_length=1)
    #: blocklist (DNSBL) checks of the sending IPs and domains: not per-second probes, so
    #: kept apart from `probes` (never launched, never in a verdict; monitor/blocklist.py)
    blocklists: list[DnsblConfig] = Field(default_factory=list)

    @field_validator("probes", mode="before")
    @classmethod
    def _no_dnsbl_probe(cls, v: Any) -> Any:
        if isinstance(v, list):
            for i, p in enumerate(v):
                if isinstance(p, dict) and p.get("type") == "dnsbl":
                    raise ValueError(
                        f"probes[{i}]: a dnsbl check is not a per-second probe: write it as "
                        "[[services.blocklists]]"
                    )
        return v

    @model_validator(mode="after")
    def _unique_probes(self) -> ServiceConfig:
        names = [p.name for p in self.probes] + [b.name for b in self.blocklists]
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


# ----------------------------------------------------------------------------- the rest


class MaintenanceConfig(ConfigModel):
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


def split_listen(listen: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` → (host, port): the one parser of every listener."""
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


def _listen_port(v: str | None) -> str | None:
    """A host:port listener's port is 0-65535 (0: the kernel picks one)."""
    if v is not None and not 0 <= int(v.rpartition(":")[2]) <= 65535:
        raise ValueError(f"port {int(v.rpartition(':')[2])} is out of range 0-65535")
    return v


class MonitorConfig(ConfigModel):
    #: the name of this vantage point, carried by every verdict and sent in every attempt
    #: id (`probe:second:slot@vantage`), hence a token: letters, digits, '.', '_', '-'
    vantage: str = Field(default_factory=socket.gethostname, min_length=1, max_length=255)
    #: HTTP listener for /metrics, /healthz, /readyz and /api/v1
    listen: str = Field(default="127.0.0.1:9310", pattern=r"^[^:]+:\d+$|^\[.+\]:\d+$")
    max_launch_lag_ms: float = Field(default=50, gt=0, le=1000)
    #: an event-loop stall longer than this that overlaps an attempt makes a timeout of
    #: that attempt the monitor's fault (probe_error / monitor_stalled)
    stall_threshold_ms: float = Field(default=100, gt=0, le=10000)
    #: bearer token for POST /api/v1/... (None: write endpoints are off)
    api_token: SecretStr | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    #: "text" lines, or "json": one object a line (monitor/logs.py); --log-format wins
    log_format: Literal["text", "json"] = "text"
    #: the leader lease among vantages sharing a store (monitor/leader.py): held this
    #: long, renewed this often; a successor takes over within ttl + renew seconds
    lease_ttl_seconds: float = Field(default=10, gt=1, le=300)
    lease_renew_seconds: float = Field(default=2, gt=0.1, le=60)
    _sec = field_validator("api_token", mode="before")(classmethod(lambda cls, v: secret(v)))

    @model_validator(mode="after")
    def _lease(self) -> MonitorConfig:
        if self.lease_renew_seconds >= self.lease_ttl_seconds:
            raise ValueError(
                f"lease_renew_seconds ({self.lease_renew_seconds:g}) must be shorter than "
                f"lease_ttl_seconds ({self.lease_ttl_seconds:g})"
            )
        return self

    @field_validator("vantage")
    @classmethod
    def _not_combined(cls, v: str) -> str:
        if v == COMBINED:
            raise ValueError(f'"{COMBINED}" names the verdicts of all vantages together')
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", v):
            raise ValueError(
                f"{v!r}: only letters, digits, '.', '_' and '-' (the name is sent in every "
                "attempt id, probe:second:slot@vantage)"
            )
        return v

    _port = field_validator("listen")(classmethod(lambda cls, v: _listen_port(v)))

    @property
    def host_port(self) -> tuple[str, int]:
        return split_listen(self.listen)


class StoreConfig(ConfigModel):
    #: sqlite:///relative/or/absolute/path.db, or postgresql://user@host/db?libpq-options
    #: (several vantage points in one database; monitor/store/postgres.py)
    url: str = Field(
        default="sqlite:///availmon-data/availmon.db", pattern=r"^(sqlite|postgresql)://"
    )
    #: the PostgreSQL password (env:/file:), when neither the URL nor libpq has it
    password: SecretStr | None = None
    #: keep per-attempt evidence, per-minute counts and the delivered notifications of
    #: resolved incidents this long (verdict runs and incidents are kept)
    evidence_retention_days: int = Field(default=400, ge=1)
    _sec = field_validator("password", mode="before")(classmethod(lambda cls, v: secret(v)))

    def password_value(self) -> str | None:
        """The password, resolved (a reference is read when the store is opened)."""
        if self.password is None:
            return None
        try:
            return self.password.get_secret_value()
        except ValueError as exc:
            raise ConfigError(f"store.password: {exc}") from None


ReportFormat = Literal["json", "csv", "md", "html"]


class CreditTier(ConfigModel):
    below_percent: float = Field(gt=0, le=100)
    credit_percent: float = Field(ge=0, le=100)


class ReportConfig(ConfigModel):
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
    #: an Ed25519 private key (PEM, PKCS#8) from an env: or file: reference: the JSON
    #: reports are signed with it, detached (monitor/reports/seal.py)
    signing_key: SecretStr | None = None

    @field_validator("signing_key", mode="before")
    @classmethod
    def _signing_key(cls, v: Any) -> Any:
        if v is not None and not (isinstance(v, str) and is_reference(v)):
            raise ValueError('must be a reference, "env:NAME" or "file:/path/key.pem"')
        return secret(v)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r}") from None
        return v


class StatusLink(ConfigModel):
    name: str = Field(min_length=1, max_length=80)
    url: str = Field(pattern=r"^(https?://|/)", max_length=2000)


class StatusConfig(ConfigModel):
    """The public status page (`/status`, `/history.atom`, `/api/v2/*.json`;
    monitor/web/__init__.py): its branding, and optionally a listener of its own that
    serves only those public pages, so they can be exposed while the API stays on
    loopback."""

    #: the page's title (also the Statuspage JSON's `page.name` and the feed's title)
    title: str = Field(default="availmon status", min_length=1, max_length=120)
    #: the page's public address (the JSON's `page.url`, the feed's links); "" = unknown
    url: str = Field(default="", pattern=r"^$|^https?://", max_length=2000)
    #: an image shown beside the title (the browser fetches it: http(s) or a /path)
    logo_url: str | None = Field(default=None, pattern=r"^(https?://|/)", max_length=2000)
    #: links shown in the page's header (support, terms, the vendor's own status page)
    links: list[StatusLink] = Field(default_factory=list, max_length=20)
    #: host:port of a listener serving only the public pages (None: only the main one)
    listen: str | None = Field(default=None, pattern=r"^[^:]+:\d+$|^\[.+\]:\d+$")
    _port = field_validator("listen")(classmethod(lambda cls, v: _listen_port(v)))

    @property
    def host_port(self) -> tuple[str, int] | None:
        return None if self.listen is None else split_listen(self.listen)


class Sev1Config(ConfigModel):
    """What the vendor's Sev-1 line asks for when a Critical Issue is reported (the
    support terms: company name, contact name, phone and email, a description), and the
    line itself. The case sheet (alerting/case.py) carries these with a description
    from the evidence and the callback deadline."""

    company: str | None = None
    contact_name: str | None = None
    contact_phone: str | None = None
    contact_email: str | None = None
    #: the account or subaccount id the vendor knows the traffic by
    account_id: str | None = None
    #: the vendor's Sev-1 phone line and support address, printed on the sheet
    vendor_phone: str | None = None
    vendor_email: str | None = None
    #: the vendor's promise: a representative calls back within this many minutes
    callback_minutes: float = Field(default=15, gt=0, le=24 * 60)


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
    sev1: Sev1Config = Sev1Config()
    status: StatusConfig = StatusConfig()

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

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # first wins: the environment over the file (given as init arguments)
        return env_settings, init_settings

    def service(self, name: str) -> ServiceConfig:
        for s in self.services:
            if s.name == name:
                return s
        raise KeyError(name)


def _toml_path(loc: tuple[int | str, ...]) -> str:
    """('services', 0, 'probes', 1, 'http', 'timeout') → services[0].probes[1].timeout"""
    out = ""
    tags = {*PROBES, *NOTIFIERS}
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


ENV_PREFIX = "AVAILMON_"


def from_environment() -> dict[str, Any]:
    """What the environment sets, as pydantic-settings reads it (nested by ``__``)."""
    return dict(EnvSettingsSource(Settings)())


def _env_variable(loc: tuple[int | str, ...], env: dict[str, Any]) -> str | None:
    """The environment variable that set the field at `loc`, if one did."""
    node: Any = env
    names: list[str] = []
    for part in loc:
        if isinstance(node, dict) and isinstance(part, str) and part in node:
            node = node[part]
            names.append(part)
        else:
            break
    if not names:
        return None
    wanted = (ENV_PREFIX + "__".join(names)).upper()
    return next((k for k in os.environ if k.upper() == wanted), wanted)


def format_validation_error(
    source: str, exc: ValidationError, env: dict[str, Any] | None = None
) -> str:
    err = exc.errors()[0]
    msg = err["msg"].removeprefix("Value error, ")
    more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    loc = tuple(err["loc"])
    variable = _env_variable(loc, env) if env else None
    if variable is not None:
        return f"environment {variable}: {_toml_path(loc)}: {msg}{more}"
    return f"{source}: {_toml_path(loc)}: {msg}{more}"


def parse(data: dict[str, Any], source: str = "config") -> Settings:
    try:
        return Settings(**data)
    except ValidationError as exc:
        env = from_environment()
        raise ConfigError(format_validation_error(source, exc, env)) from None
    except ValueError as exc:  # pydantic-settings' SettingsError: a variable it cannot decode
        field = re.search(r'field "([^"]+)"', str(exc))
        name = (ENV_PREFIX + field.group(1)).upper() if field else ENV_PREFIX + "…"
        raise ConfigError(
            f"environment {name}: not valid JSON (a list or table field takes JSON)"
        ) from None


#: keys whose string values are file paths, anywhere in the file
PATH_KEYS = frozenset({"ca_file"})
SQLITE = "sqlite:///"


def _anchor(path: str, base: Path) -> str:
    p = Path(path).expanduser()
    return str(p if p.is_absolute() else base / p)


def anchor_paths(data: Any, base: Path) -> Any:
    """Relative paths written in a config file mean relative to the file's own folder,
    not to wherever the daemon was started: the SQLite store, the report folder, every
    ``file:`` secret and ``ca_file``. (Values from the environment, and defaults, follow
    the working directory.)"""

    def walk(node: Any, key: str | None) -> Any:
        if isinstance(node, dict):
            return {k: walk(v, k) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, key) for v in node]
        if isinstance(node, str):
            if node.startswith("file:"):
                return "file:" + _anchor(node[5:], base)
            if key in PATH_KEYS:
                return _anchor(node, base)
        return node

    out = walk(data, None)
    store = out.get("store")
    if isinstance(store, dict) and isinstance(store.get("url"), str):
        url = store["url"]
        rest = url[len(SQLITE) :]
        if url.startswith(SQLITE) and rest and rest != ":memory:" and not rest.startswith("/"):
            store["url"] = SQLITE + _anchor(rest, base)
    report = out.get("report")
    if isinstance(report, dict) and isinstance(report.get("dir"), str):
        report["dir"] = _anchor(report["dir"], base)
    return out


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
    return parse(anchor_paths(data, path.resolve().parent), str(path))
