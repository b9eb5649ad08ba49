"""Settings: built-in defaults, then a TOML file, then `LAMBDALAKE_*` environment variables.

Every setting `section.key` is overridden by the variable `LAMBDALAKE_SECTION_KEY`, e.g.
`kafka.bootstrap_servers` by `LAMBDALAKE_KAFKA_BOOTSTRAP_SERVERS`. The file is `$LAMBDALAKE_CONFIG`,
else `./lambdalake.toml` when present. Relative local paths are resolved against the file's folder
(or the working directory when there is no file). `lambdalake.toml` at the repository root documents
every setting.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import tomllib

from lambdalake.errors import LambdalakeError

ENV_PREFIX = "LAMBDALAKE_"


@dataclass(frozen=True)
class KafkaSettings:
    """Where the brokers are, and how the local single-node broker listens."""

    bootstrap_servers: str = "127.0.0.1:9092"
    local_controller_port: int = 9093
    topic_partitions: int = 2
    starting_offsets: str = "earliest"
    max_offsets_per_trigger: int = 200_000
    # the streaming job's Kafka consumers (Spark's Kafka source): bytes a fetch brings of a
    # partition, records a poll hands over (Kafka's defaults: 1 MB, 500)
    max_partition_fetch_bytes: int = 8 * 1024 * 1024
    max_poll_records: int = 10_000
    fail_on_data_loss: bool = True
    outage_timeout_s: int = 300

    def __post_init__(self) -> None:
        """Refuse a count Spark or Kafka would refuse with a stack trace (one line)."""
        for name in ("max_offsets_per_trigger", "max_partition_fetch_bytes",
                     "max_poll_records"):
            value = getattr(self, name)
            if value < 1:
                raise LambdalakeError(f"kafka.{name} must be at least 1, got {value}")


@dataclass(frozen=True)
class TopicSettings:
    """Kafka topic names."""

    tolls_events: str = "tolls.events"
    tolls_alerts: str = "tolls.alerts"
    clicks_events: str = "clicks.events"
    etl_table_loaded: str = "etl.table_loaded"


@dataclass(frozen=True)
class LakeSettings:
    """Root of the Delta lake: a local path or an s3a:// URI."""

    root: str = ".lambdalake/lake"


@dataclass(frozen=True)
class CheckpointSettings:
    """Root of the streaming checkpoints."""

    root: str = ".lambdalake/checkpoints"


@dataclass(frozen=True)
class StateSettings:
    """Local runtime state: the local broker's data and logs."""

    dir: str = ".lambdalake/state"


@dataclass(frozen=True)
class JvmSettings:
    """Where `lambdalake setup` puts the pinned JVM artifacts (Maven Central, fetched once)."""

    cache_dir: str = "~/.cache/lambdalake/jvm"


@dataclass(frozen=True)
class SparkSettings:
    """The Spark master and extra Spark configuration."""

    master: str = "local[2]"
    driver_memory: str = "4g"
    shuffle_partitions: int = 4
    trigger_interval: str = "1 second"
    conf: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ValidationSettings:
    """Bounds beyond which an event is quarantined."""

    max_amount: str = "1000.00"
    max_message_bytes: int = 65_536
    max_event_age_days: int = 400
    max_future_minutes: int = 60
    duplicate_window_days: int = 30
    key_is_transaction_id: bool = True


@dataclass(frozen=True)
class SpeedSettings:
    """The streaming job's commits."""

    driver_commit_max_rows: int = 1_000_000


@dataclass(frozen=True)
class MaintainSettings:
    """Table maintenance (`lambdalake maintain`)."""

    retain_hours: int = 168


@dataclass(frozen=True)
class ServingSettings:
    """The served database file (`lambdalake serve`)."""

    database: str = ".lambdalake/serving/lambdalake.duckdb"
    refresh_interval: str = "10s"


@dataclass(frozen=True)
class Settings:
    """All settings of lambdalake."""

    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    topics: TopicSettings = field(default_factory=TopicSettings)
    lake: LakeSettings = field(default_factory=LakeSettings)
    checkpoint: CheckpointSettings = field(default_factory=CheckpointSettings)
    state: StateSettings = field(default_factory=StateSettings)
    jvm: JvmSettings = field(default_factory=JvmSettings)
    spark: SparkSettings = field(default_factory=SparkSettings)
    validation: ValidationSettings = field(default_factory=ValidationSettings)
    speed: SpeedSettings = field(default_factory=SpeedSettings)
    maintain: MaintainSettings = field(default_factory=MaintainSettings)
    serving: ServingSettings = field(default_factory=ServingSettings)
    source: str = "built-in defaults"

    def replace(self, **sections: Mapping[str, Any]) -> Settings:
        """Return a copy with some `section={key: value}` settings changed (tests, the demo)."""
        changed = {
            name: dataclasses.replace(getattr(self, name), **values)
            for name, values in sections.items()
        }
        return dataclasses.replace(self, **changed)


_PATH_SETTINGS = {("lake", "root"), ("checkpoint", "root"), ("state", "dir"), ("jvm", "cache_dir"),
                  ("serving", "database")}


def _sections() -> dict[str, type]:
    return {
        f.name: type(f.default_factory())  # type: ignore[misc]
        for f in fields(Settings)
        if f.name != "source"
    }


def _convert(raw: Any, default: Any, where: str) -> Any:
    if isinstance(default, bool):
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise LambdalakeError(f"{where} must be true or false, got {raw!r}")
    if isinstance(default, int):
        try:
            return int(raw)
        except (TypeError, ValueError):
            raise LambdalakeError(f"{where} must be a whole number, got {raw!r}") from None
    if isinstance(default, Mapping):
        if isinstance(raw, Mapping):
            return {str(k): str(v) for k, v in raw.items()}
        pairs = [p for p in str(raw).split(",") if p.strip()]
        if not all("=" in p for p in pairs):
            raise LambdalakeError(f"{where} must be key=value pairs separated by commas")
        return dict(p.strip().split("=", 1) for p in pairs)
    return str(raw)


def local_path(location: str) -> Path | None:
    """The local filesystem path of a lake or checkpoint location (a plain path or a `file:`
    URI), or None when it is on an object store (`s3a://...`, `abfss://...`)."""
    if "://" in location and not location.startswith("file:"):
        return None
    return Path(location.removeprefix("file:"))


def _resolve_path(value: str, base: Path) -> str:
    if "://" in value:
        return value
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else (base / path).resolve())


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Load settings from defaults, the config file and the environment (see module docstring)."""
    env = os.environ if env is None else env
    config_path = env.get("LAMBDALAKE_CONFIG")
    file_values: dict[str, Any] = {}
    base = Path.cwd()
    source = "built-in defaults"
    if config_path:
        path = Path(config_path).expanduser()
        if not path.is_file():
            raise LambdalakeError(
                f"LAMBDALAKE_CONFIG names {config_path}, which is not a file: fix or unset it"
            )
    else:
        path = Path("lambdalake.toml")
        if not path.is_file():
            path = None  # type: ignore[assignment]
    if path is not None:
        try:
            file_values = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise LambdalakeError(f"{path} is not valid TOML: {exc}") from None
        base = path.resolve().parent
        source = str(path)

    sections = _sections()
    for name in file_values:
        if name not in sections:
            raise LambdalakeError(_unknown(name, list(sections), source))

    built: dict[str, Any] = {}
    for name, cls in sections.items():
        defaults = cls()
        given = file_values.get(name, {})
        if not isinstance(given, Mapping):
            raise LambdalakeError(f"[{name}] in {source} must be a table of settings")
        keys = {f.name for f in fields(cls)}
        for key in given:
            if key not in keys:
                raise LambdalakeError(_unknown(f"{name}.{key}", [f"{name}.{k}" for k in keys],
                                               source))
        values = {}
        for f in fields(cls):
            default = getattr(defaults, f.name)
            env_name = f"{ENV_PREFIX}{name}_{f.name}".upper()
            if env_name in env:
                value = _convert(env[env_name], default, env_name)
            elif f.name in given:
                value = _convert(given[f.name], default, f"{name}.{f.name} in {source}")
            else:
                value = default
            if (name, f.name) in _PATH_SETTINGS:
                value = _resolve_path(value, base)
            values[f.name] = value
        built[name] = cls(**values)
    return Settings(**built, source=source)


def _unknown(name: str, known: list[str], source: str) -> str:
    hint = difflib.get_close_matches(name, known, n=1)
    suffix = f" (did you mean {hint[0]}?)" if hint else ""
    return f"unknown setting {name} in {source}{suffix}"


def describe(settings: Settings) -> list[tuple[str, str, Any]]:
    """List every setting as (name, environment variable, value), for `lambdalake config`."""
    rows = []
    for name in _sections():
        section = getattr(settings, name)
        for f in fields(section):
            rows.append((f"{name}.{f.name}", f"{ENV_PREFIX}{name}_{f.name}".upper(),
                         getattr(section, f.name)))
    return rows
