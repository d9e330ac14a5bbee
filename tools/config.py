"""One settings object for the whole product, derived from one table of settings.

Every setting is a row of ``SETTINGS``: its environment variable, its default and a line of
help. The ``Settings`` object, ``homepot-ai --help-settings`` and the README check are all
derived from that table, so a setting cannot exist in one place and be missing from another
(datasette's habit). Values come from the environment, then from a ``.env`` file in the working
directory, then from the default.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    help: str


SETTINGS: tuple[Setting, ...] = (
    Setting("HOMEPOT_AI_DATA_DIR", "./var", "Directory for all local state: the SQLite store, the checkpointer, ChromaDB, fitted models."),
    Setting("HOMEPOT_AI_DATABASE_URL", "", "SQLAlchemy URL of the store. Unset: SQLite file `homepot.db` in the data directory. Example: `postgresql+psycopg://user@host:5432/homepot`."),
    Setting("HOMEPOT_AI_AI_DATABASE_URL", "", "Optional separate store for our `ai_*` tables, for a HOMEPOT database we may only read. Unset: the same database."),
    Setting("HOMEPOT_AI_READ_ONLY_SOURCE", False, "Treat the HOMEPOT tables as read-only (never create or migrate them); use with a real HOMEPOT database."),
    Setting("HOMEPOT_AI_NOW", "", "Pin the agent's clock (ISO-8601, UTC) for reproducible tests and evals. Unset: the real time."),
    Setting("HOMEPOT_AI_MODEL", "auto", "Model provider: `auto` (Ollama when reachable with the model pulled, else offline), `offline`, or `ollama[:MODEL]`."),
    Setting("HOMEPOT_AI_OLLAMA_HOST", "http://127.0.0.1:11434", "Base URL of the Ollama server."),
    Setting("HOMEPOT_AI_OLLAMA_MODEL", "llama3.2", "Ollama model name."),
    Setting("HOMEPOT_AI_OLLAMA_NUM_CTX", 8192, "Context window passed to Ollama (`num_ctx`); Ollama's own default silently truncates the system prompt and tool schemas."),
    Setting("HOMEPOT_AI_OLLAMA_TIMEOUT", 60.0, "Seconds to wait for one Ollama response."),
    Setting("HOMEPOT_AI_CHROMA_HOST", "", "Host of a Chroma server (HttpClient). Unset: a PersistentClient under the data directory."),
    Setting("HOMEPOT_AI_CHROMA_PORT", 8000, "Port of the Chroma server."),
    Setting("HOMEPOT_AI_RUNBOOKS_DIR", "", "Folder of Markdown runbooks loaded into the knowledge collection. Unset: the starter runbooks shipped with the package."),
    Setting("HOMEPOT_AI_EMBEDDINGS", "auto", "Embeddings of the long-term memory: `auto` (the bundled all-MiniLM-L6-v2 ONNX model, else hashing with a warning), `minilm`, `hashing`, or `ollama:MODEL` (Ollama's embeddings; opt-in)."),
    Setting("HOMEPOT_AI_MEMORY_MIN_SCORE", "", "Relevance threshold (cosine similarity, 0-1) below which memory snippets are not used. Unset: the embedding's own default (0.25 for MiniLM)."),
    Setting("HOMEPOT_AI_SUMMARY_TOKEN_BUDGET", 1500, "Conversation tokens kept verbatim before older turns are summarised."),
    Setting("HOMEPOT_AI_MAX_TOOL_CALLS", 8, "Most tool calls the agent may make in one turn."),
    Setting("HOMEPOT_AI_TOOL_OUTPUT_CHARS", 4000, "Most characters of one tool result shown to the model; larger results are summarised."),
    Setting("HOMEPOT_AI_SQL_TIMEOUT_MS", 2000, "Statement time limit of the guarded read-only SQL tool."),
    Setting("HOMEPOT_AI_SQL_MAX_ROWS", 200, "Row cap of the guarded read-only SQL tool."),
    Setting("HOMEPOT_AI_STALE_AFTER_S", 900, "A device whose newest metric is older than this is reported as stale in the trust line."),
    Setting("HOMEPOT_AI_USER", "", "User name recorded in the audit log for CLI calls. Unset: the OS user."),
    Setting("HOMEPOT_AI_BENCHMARKS_DIR", "", "Folder of the public benchmark data. Unset: `../shared/benchmarks` beside the checkout."),
    Setting("HOMEPOT_AI_JUDGE_MODEL", "", "Ollama model that grades free-text answer quality in `homepot-ai eval --judge`. Unset: the agent's HOMEPOT_AI_OLLAMA_MODEL."),
)

_BY_NAME = {s.name: s for s in SETTINGS}

#: Removed names, mapped to what to use instead.
OBSOLETE_SETTINGS: dict[str, str] = {}


def _read_dotenv(path: Path) -> dict[str, str]:
    """Parse a ``.env`` file with python-dotenv (quotes, comments, ``export`` prefixes)."""
    if not path.is_file():
        return {}
    from dotenv import dotenv_values

    return {k: v for k, v in dotenv_values(path).items() if v is not None}


def _coerce(setting: Setting, raw: str) -> Any:
    default = setting.default
    if isinstance(default, bool):
        return raw.strip().lower() in {"1", "true", "yes", "on"}
    if isinstance(default, int):
        try:
            return int(raw)
        except ValueError as exc:
            raise ValueError(f"{setting.name} must be a whole number, got {raw!r}") from exc
    if isinstance(default, float):
        try:
            return float(raw)
        except ValueError as exc:
            raise ValueError(f"{setting.name} must be a number, got {raw!r}") from exc
    return raw


@dataclass(frozen=True)
class Settings:
    """Resolved settings. Build with :func:`load_settings`; override with ``replace``."""

    values: dict[str, Any] = field(default_factory=dict)

    def get(self, name: str) -> Any:
        if name in OBSOLETE_SETTINGS:
            raise KeyError(f"{name} was removed: {OBSOLETE_SETTINGS[name]}")
        return self.values.get(name, _BY_NAME[name].default)

    def replace(self, **overrides: Any) -> "Settings":
        merged = dict(self.values)
        for key, value in overrides.items():
            name = key if key.startswith("HOMEPOT_AI_") else "HOMEPOT_AI_" + key.upper()
            if name not in _BY_NAME:
                raise KeyError(f"Unknown setting {name}. Known: {', '.join(_BY_NAME)}")
            merged[name] = value
        return Settings(merged)

    # Convenience accessors for the settings read most often.
    @property
    def data_dir(self) -> Path:
        return Path(self.get("HOMEPOT_AI_DATA_DIR")).expanduser()

    @property
    def database_url(self) -> str:
        url = self.get("HOMEPOT_AI_DATABASE_URL")
        if url:
            return url
        return f"sqlite:///{(self.data_dir / 'homepot.db').resolve()}"

    @property
    def ai_database_url(self) -> str:
        return self.get("HOMEPOT_AI_AI_DATABASE_URL") or self.database_url

    @property
    def benchmarks_dir(self) -> Path:
        raw = self.get("HOMEPOT_AI_BENCHMARKS_DIR")
        if raw:
            return Path(raw).expanduser()
        return Path(__file__).resolve().parent.parent.parent / "shared" / "benchmarks"

    def now(self) -> datetime:
        """The agent's clock: pinned by HOMEPOT_AI_NOW, else the real UTC time (naive UTC)."""
        pinned = self.get("HOMEPOT_AI_NOW")
        if pinned:
            ts = datetime.fromisoformat(str(pinned).replace("Z", "+00:00"))
            if ts.tzinfo is not None:
                ts = ts.astimezone(timezone.utc).replace(tzinfo=None)
            return ts
        return datetime.now(timezone.utc).replace(tzinfo=None)


def load_settings(env: dict[str, str] | None = None, dotenv: Path | None = None) -> Settings:
    """Read every setting from ``env`` (default ``os.environ``) and a ``.env`` file."""
    environ = dict(os.environ if env is None else env)
    file_values = _read_dotenv(dotenv if dotenv is not None else Path.cwd() / ".env")
    for name, message in OBSOLETE_SETTINGS.items():
        if name in environ or name in file_values:
            raise ValueError(f"{name} is no longer used: {message}")
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        raw = environ.get(setting.name, file_values.get(setting.name))
        if raw is not None and raw != "":
            values[setting.name] = _coerce(setting, raw)
    return Settings(values)
