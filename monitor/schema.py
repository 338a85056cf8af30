"""The building blocks of every config model: the strict base model, secret references,
and the one error type a config that cannot work raises.

Each probe (`probes/`) and each notifier (`alerting/notifiers/`) owns its config model
beside its implementation and builds it from these; `monitor/config.py` assembles them.

Secrets are never written in the file itself in a real deployment: a secret field takes
``"env:NAME"`` (read from the environment) or ``"file:/path"`` (first line of a file). They
are held as `SecretStr`, so they print as ``**********`` in logs, metrics and API output.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, quote_plus

from pydantic import AfterValidator, BaseModel, ConfigDict, SecretStr
from yarl import URL


class ConfigError(Exception):
    """A config that cannot work; `str()` is the one-line message to print."""


def resolve_secret(value: str) -> str:
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


class SecretRef(SecretStr):
    """A secret named by reference (``env:NAME``, ``file:PATH``), resolved when first used:
    so a command that never uses a secret (``availmon report``) does not need it set.
    `run` and `check-config` resolve every one before starting (`unresolved_secrets`),
    naming each that is missing."""

    def __init__(self, reference: str) -> None:
        super().__init__(reference)  # the reference, not the secret: shown masked anyway
        self.reference = reference
        self._resolved: str | None = None

    def get_secret_value(self) -> str:
        if self._resolved is None:
            self._resolved = resolve_secret(self.reference)  # ValueError: what is missing
        return self._resolved


def is_reference(value: str) -> bool:
    return value.startswith(("env:", "file:"))


def secret(value: Any) -> Any:
    """A `mode="before"` validator body: a reference becomes a `SecretRef` (resolved when
    used), any other string a `SecretStr` of itself."""
    if isinstance(value, str):
        if is_reference(value):
            if not value.partition(":")[2].strip():
                raise ValueError(f"{value!r} names no variable or file")
            return SecretRef(value)
        return SecretStr(value)
    return value


_SCALARS = frozenset({str, int, float, bool})


def _secret_fields(value: Any, path: str = "") -> Iterator[tuple[str, SecretStr]]:
    """(TOML-ish path, secret) for every `SecretStr` field of a config model, also inside
    dicts, lists and nested models, in config order."""
    if value is None or type(value) in _SCALARS:
        return  # most values (`expect_status` holds a hundred ints): nothing inside
    if isinstance(value, SecretStr):
        yield path, value
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from _secret_fields(getattr(value, name), f"{path}.{name}" if path else name)
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _secret_fields(v, f"{path}.{k}")
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            yield from _secret_fields(v, f"{path}[{i}]")


def unresolved_secrets(model: BaseModel) -> list[str]:
    """``path: why`` for every secret reference of `model` that cannot be resolved now
    (a variable not set, a file not readable), all of them, in config order."""
    found: list[str] = []
    for path, value in _secret_fields(model):
        if isinstance(value, SecretRef):
            try:
                value.get_secret_value()
            except ValueError as exc:
                found.append(f"{path}: {exc}")
    return found


def secret_map(value: Any) -> Any:
    """`secret` for every value of a mapping (headers whose values may be API keys)."""
    if isinstance(value, dict):
        return {k: secret(v) for k, v in value.items()}
    return value


_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # RFC 9110 field-name


def is_token(name: str) -> bool:
    """An RFC 9110 token: what an HTTP header name must be."""
    return _TOKEN.match(name) is not None


def http_url(value: str) -> str:
    """An ``http://`` or ``https://`` URL with a host and a valid port (what a connection
    needs), else ValueError saying what is wrong."""
    try:
        url = URL(value)
    except ValueError as exc:
        raise ValueError(f"not a valid URL: {exc}") from None
    if url.scheme not in ("http", "https"):
        raise ValueError("needs an http:// or https:// URL")
    if not url.host:
        raise ValueError(f"{value!r} has no host")
    if url.explicit_port == 0:
        raise ValueError("port 0 is not a port one can connect to")
    if any(c in value for c in "\r\n\0 "):
        raise ValueError("a URL may not contain spaces or line breaks")
    return value


HttpUrl = Annotated[str, AfterValidator(http_url)]


def header_names(headers: dict[str, Any]) -> dict[str, Any]:
    """HTTP header names are RFC 9110 tokens; values (maybe secrets) have no line break.
    A value is never echoed in the message: it may be an API key."""
    for name, value in headers.items():
        if not is_token(name):
            raise ValueError(f"header name {name!r} is not a valid HTTP field name")
        if isinstance(value, SecretRef):
            continue  # resolved when used: the probe checks it then (probes/http.py)
        raw = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
        if any(c in raw for c in "\r\n\0"):
            raise ValueError(f"header {name}: a value may not contain a line break")
    return headers


def ascii_line(value: str) -> str:
    """One line of printable ASCII (SMTP envelope and greeting fields)."""
    if not value.isascii():
        raise ValueError("must be ASCII (an SMTP envelope or greeting field)")
    if any(c in value for c in "\r\n\0"):
        raise ValueError("may not contain a line break")
    return value


AsciiLine = Annotated[str, AfterValidator(ascii_line)]


def existing_file(path: Path | None) -> Path | None:
    if path is not None and not path.expanduser().is_file():
        raise ValueError(f"{path}: no such file")
    return path


ExistingFile = Annotated[Path | None, AfterValidator(existing_file)]


def secret_values(model: BaseModel) -> list[str]:
    """Every secret a config model holds (its `SecretStr` fields, also inside dicts and
    nested models), for scrubbing them out of whatever a target says back."""
    return [v for _, field in _secret_fields(model) if (v := field.get_secret_value())]


class Scrubber:
    """Blanks secrets out of text as a target may echo them: as they are, base64-encoded
    (HTTP Basic, SMTP AUTH LOGIN), URL-encoded, and as SMTP AUTH PLAIN's
    ``base64("\\0user\\0password")``. Secrets shorter than 4 characters are left alone
    (blanking them would mangle every message)."""

    MASK = "***"

    def __init__(self, secrets: list[str], username: str | None = None) -> None:
        forms: set[str] = set()
        for s in secrets:
            if len(s) < 4:
                continue
            raw = s.encode()
            forms |= {s, quote(s, safe=""), quote_plus(s)}
            forms.add(base64.b64encode(raw).decode())
            forms.add(base64.b64encode(raw).decode().rstrip("="))
            if username is not None:
                plain = base64.b64encode(b"\0" + username.encode() + b"\0" + raw).decode()
                forms |= {plain, plain.rstrip("=")}
        # longest first, so that a form containing another is blanked whole
        self.forms = sorted(forms, key=len, reverse=True)

    @classmethod
    def for_config(cls, model: BaseModel) -> Scrubber:
        username = getattr(model, "username", None)
        return cls(secret_values(model), username if isinstance(username, str) else None)

    def text(self, text: str) -> str:
        for form in self.forms:
            if form in text:
                text = text.replace(form, self.MASK)
        return text

    def detail(self, detail: dict[str, Any]) -> dict[str, Any]:
        """`detail` with every string in it scrubbed (a new dict when anything changed)."""
        if not self.forms:
            return detail

        def clean(value: Any) -> Any:
            if isinstance(value, str):
                return self.text(value)
            if isinstance(value, dict):
                return {k: clean(v) for k, v in value.items()}
            if isinstance(value, list):
                return [clean(v) for v in value]
            return value

        return {k: clean(v) for k, v in detail.items()}


class ConfigModel(BaseModel):
    """Strict and immutable: an unknown key is an error, not a silently ignored typo."""

    model_config = ConfigDict(extra="forbid", frozen=True)
