"""The building blocks of every config model: the strict base model, secret references,
and the one error type a config that cannot work raises.

Each probe (`probes/`) and each notifier (`alerting/notifiers/`) owns its config model
beside its implementation and builds it from these; `monitor/config.py` assembles them.

Secrets are never written in the file itself in a real deployment: a secret field takes
``"env:NAME"`` (read from the environment) or ``"file:/path"`` (first line of a file). They
are held as `SecretStr`, so they print as ``**********`` in logs, metrics and API output.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, SecretStr


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


def secret(value: Any) -> Any:
    """A `mode="before"` validator body: a string becomes a `SecretStr` of what it names."""
    if isinstance(value, str):
        return SecretStr(resolve_secret(value))
    return value


def secret_map(value: Any) -> Any:
    """`secret` for every value of a mapping (headers whose values may be API keys)."""
    if isinstance(value, dict):
        return {k: secret(v) for k, v in value.items()}
    return value


class ConfigModel(BaseModel):
    """Strict and immutable: an unknown key is an error, not a silently ignored typo."""

    model_config = ConfigDict(extra="forbid", frozen=True)
