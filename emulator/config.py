"""Server configuration: one frozen dataclass; defaults < environment (AIO_EMULATOR_*) < CLI."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from .billing import DEFAULT_CREDITS
from .journal import DEFAULT_JOURNAL_SIZE
from .tasks import DEFAULT_MAX_TASKS, DEFAULT_TASK_TTL_S

__all__ = ["ENV_PREFIX", "Config", "ConfigError"]

ENV_PREFIX = "AIO_EMULATOR_"
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
DEFAULT_IMAGE_CACHE_BYTES = 64 * 1024 * 1024


#: settings given in the environment as comma-separated lists
LIST_FIELDS = ("cors_origins", "allowed_hosts")


class ConfigError(ValueError):
    """A setting has a value the emulator cannot use; the message names it."""


@dataclass(frozen=True, slots=True)
class Config:
    host: str = "127.0.0.1"
    port: int = 8000
    #: seed of every random choice (task ids, timings, colours); None picks one at start-up
    seed: int | None = None
    #: base of image URLs; None means "the scheme and host the client used"
    public_url: str | None = None
    clock: str = "real"
    default_credits: int = DEFAULT_CREDITS
    #: keys known at start-up with their balance
    keys: Mapping[str, int] = field(default_factory=dict)
    #: only keys in ``keys`` (or set through the control API) are valid
    only_known_keys: bool = False
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    task_ttl_s: float = DEFAULT_TASK_TTL_S
    max_tasks: int = DEFAULT_MAX_TASKS
    journal_size: int = DEFAULT_JOURNAL_SIZE
    image_cache_bytes: int = DEFAULT_IMAGE_CACHE_BYTES
    #: the scenario the server starts with: a ready scenario's name or a YAML file's path, or
    #: several applied in order (``AIO_EMULATOR_SCENARIO=rate-limited,instant``)
    scenario: str | tuple[str, ...] = "default"
    #: API key -> scenario, so one server can serve a healthy key and a failing key side by side
    key_scenarios: Mapping[str, str] = field(default_factory=dict)
    #: where tasks, balances, clock and journal are saved and restored from (None: nowhere)
    state_file: str | None = None
    #: seconds between saves of the state file (only when something changed)
    state_interval_s: float = 5.0
    #: required on every /_emulator/ call when set (Bearer or X-Emulator-Token)
    control_token: str | None = None
    #: webhook retries wait this long, then twice as long each time (1, 2, 4 s by default)
    webhook_backoff_s: float = 1.0
    #: origins whose pages may read the emulated API's answers ("*": any); never the control API
    cors_origins: tuple[str, ...] = ("*",)
    #: host names the control API answers besides loopback names, the bind host and the
    #: --public-url host (DNS rebinding: a page's requests carry its own host name)
    allowed_hosts: tuple[str, ...] = ()
    #: most connections served at once; the ones beyond get 503 (emulator.protocol)
    max_connections: int = 512

    def __post_init__(self) -> None:
        if self.clock not in ("real", "virtual"):
            raise ConfigError(f"clock: {self.clock!r} is not one of: real, virtual")
        counts = ("max_body_bytes", "max_tasks", "journal_size", "image_cache_bytes")
        for name in (*counts, "max_connections"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: must be at least 1, got {getattr(self, name)}")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port: {self.port} is not a port (allowed: 0 to 65535)")
        if not self.task_ttl_s >= 0 or self.default_credits < 0:  # (not >=: refuses NaN)
            raise ConfigError("task_ttl_s and default_credits must not be negative")
        if not 0 < self.state_interval_s < 1e9:
            raise ConfigError(f"state_interval_s: must be positive, got {self.state_interval_s}")
        if not 0 <= self.webhook_backoff_s <= 3600:
            raise ConfigError(
                f"webhook_backoff_s: must be 0 to 3600 seconds, got {self.webhook_backoff_s}"
            )
        if self.control_token is not None and not 8 <= len(self.control_token) <= 256:
            raise ConfigError("control_token: must be 8 to 256 characters long")
        if self.public_url is not None and not self.public_url.startswith(("http://", "https://")):
            raise ConfigError(
                f"public_url: {self.public_url!r} must start with http:// or https://"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Config:
        """Defaults, then AIO_EMULATOR_<FIELD> variables, then ``overrides`` (None = not given)."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = environ.get(ENV_PREFIX + f.name.upper())
            if raw is not None and f.name in LIST_FIELDS:
                values[f.name] = tuple(item.strip() for item in raw.split(",") if item.strip())
            elif raw is not None and f.name not in ("keys", "key_scenarios"):
                values[f.name] = _parse(f.name, raw, f.type)
        if "," in values.get("scenario", ""):
            values["scenario"] = tuple(
                s.strip() for s in values["scenario"].split(",") if s.strip()
            )
        if ENV_PREFIX + "KEYS" in environ:
            values["keys"] = parse_keys(environ[ENV_PREFIX + "KEYS"].split(","))
        if ENV_PREFIX + "KEY_SCENARIOS" in environ:
            values["key_scenarios"] = parse_key_scenarios(
                environ[ENV_PREFIX + "KEY_SCENARIOS"].split(",")
            )
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def with_(self, **changes: Any) -> Config:
        return replace(self, **changes)


def parse_keys(items: list[str]) -> dict[str, int]:
    """``aio_a=100`` or ``aio_a`` (default balance) items into a key -> credits mapping."""
    out: dict[str, int] = {}
    for item in (i.strip() for i in items):
        if not item:
            continue
        key, _, credits = item.partition("=")
        if not key.startswith("aio_"):
            raise ConfigError(f"keys: {key!r} must start with 'aio_'")
        try:
            out[key] = int(credits) if credits else DEFAULT_CREDITS
        except ValueError as exc:
            raise ConfigError(
                f"keys: credits of {key!r} must be an integer, got {credits!r}"
            ) from exc
    return out


def parse_key_scenarios(items: list[str]) -> dict[str, str]:
    """``aio_a=outage`` items into a key -> scenario mapping."""
    out: dict[str, str] = {}
    for item in (i.strip() for i in items):
        if not item:
            continue
        key, sep, scenario = item.partition("=")
        if not key.startswith("aio_") or not sep or not scenario:
            raise ConfigError(f"key_scenarios: {item!r} must look like aio_key=SCENARIO")
        out[key] = scenario
    return out


def _parse(name: str, raw: str, type_: Any) -> Any:
    kind = str(type_)
    try:
        if "bool" in kind:
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(raw)
        if kind.startswith("int"):
            return int(raw)
        if kind.startswith("float"):
            return float(raw)
    except ValueError as exc:
        raise ConfigError(
            f"{ENV_PREFIX}{name.upper()}: {raw!r} is not a valid {kind.split(' ')[0]}"
        ) from exc
    return raw or None if "None" in kind else raw
