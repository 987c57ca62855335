"""Typed access to a connector's environment, with errors that name the variable.

Owns: reading ``CONNECTOR_SOCKET``, ``STATE_PREFIX`` and backend variables
from a mapping (the process environment in production, a dict in tests) and
normalising the key prefix.

Must not: import a backend client.
"""

from __future__ import annotations

from collections.abc import Mapping

from .errors import ConfigError


class Settings:
    """A read-only view of connector configuration."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = dict(env)

    def required(self, name: str, *, hint: str = "") -> str:
        value = self._env.get(name, "").strip()
        if not value:
            extra = f" ({hint})" if hint else ""
            raise ConfigError(f"{name} is required but not set{extra}")
        return value

    def optional(self, name: str, default: str | None = None) -> str | None:
        value = self._env.get(name, "").strip()
        return value if value else default

    def integer(self, name: str, default: int, *, minimum: int | None = None) -> int:
        raw = self.optional(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
        if minimum is not None and value < minimum:
            raise ConfigError(f"{name} must be at least {minimum}, got {value}")
        return value

    def number(self, name: str, default: float, *, minimum: float = 0.0) -> float:
        raw = self.optional(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a number, got {raw!r}") from None
        if value < minimum:
            raise ConfigError(f"{name} must be at least {minimum}, got {value}")
        return value

    def flag(self, name: str, default: bool) -> bool:
        raw = self.optional(name)
        if raw is None:
            return default
        lowered = raw.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{name} must be true or false, got {raw!r}")

    @property
    def prefix(self) -> str:
        """STATE_PREFIX normalised to ``""`` or ``"a/b/"`` whatever slashes the user wrote."""
        return normalize_prefix(self.optional("STATE_PREFIX", "") or "")


def normalize_prefix(raw: str) -> str:
    parts = [p for p in raw.split("/") if p]
    for part in parts:
        if part in (".", ".."):
            raise ConfigError(f"STATE_PREFIX must not contain '.' or '..' segments, got {raw!r}")
    return "/".join(parts) + "/" if parts else ""
