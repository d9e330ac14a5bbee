"""What the offline model knows about the fleet: site, device, device-type and metric names.

The offline model has no language model to "just know" that "the Camden store" is a site or that
"card reader errors" is an ``extra_metrics`` key. It learns the vocabulary of the fleet from the
store once (``Catalog.from_store``) and then finds mentions in a question with cheap, indexed
matching:

* every entity gets a few *aliases* (its name, its public id, its name without filler words such
  as "store" or "site", its key with underscores read as spaces);
* a question is normalised to lower-case word tokens; misspelt tokens are corrected against the
  catalog's own word list (``difflib``, so "camdem" finds "camden") before matching;
* the longest alias found as a run of tokens wins, so "Camden POS 3" is a device and not the
  site "Camden".

All of this is plain dictionaries and a small word list, so one question costs well under a
millisecond even on a fleet of a few thousand devices.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Iterable

#: Words that say "a place" or "a thing" and carry no identity: "the Camden store" is "Camden".
FILLER_WORDS = frozenset({"the", "store", "site", "shop", "branch", "location", "outlet", "restaurant", "cafe"})

#: How people name device types (singular and plural forms are both listed).
DEVICE_TYPE_SYNONYMS: dict[str, tuple[str, ...]] = {
    "pos_terminal": (
        "pos", "pos terminal", "pos terminals", "pos device", "pos devices", "till", "tills",
        "register", "registers", "cash register", "cash registers", "checkout", "checkouts",
        "terminal", "terminals", "payment terminal", "payment terminals", "kiosk", "kiosks",
        "card reader", "card readers", "point of sale",
    ),
    "iot_sensor": (
        "sensor", "sensors", "iot sensor", "iot sensors", "iot device", "iot devices", "iot",
        "fridge sensor", "fridge sensors", "temperature sensor", "temperature sensors", "probe", "probes",
    ),
    "industrial_controller": (
        "controller", "controllers", "industrial controller", "industrial controllers", "plc", "plcs",
    ),
    "gateway": ("gateway", "gateways", "router", "routers", "iot gateway", "iot gateways", "hub", "hubs"),
}

#: Extra plain-language metric names on top of ``tools.scopes.METRIC_SYNONYMS`` (the tools'
#: own table, which wins on conflicts so that the model and the tools read words the same way).
EXTRA_METRIC_SYNONYMS: dict[str, str] = {
    "cpu utilisation": "cpu_percent",
    "cpu utilization": "cpu_percent",
    "processor load": "cpu_percent",
    "mem": "memory_percent",
    "memory utilisation": "memory_percent",
    "ping time": "network_latency_ms",
    "slowness": "network_latency_ms",
    "response times": "network_latency_ms",
    "sales count": "transaction_count",
    "orders": "transaction_count",
    "error ratio": "error_rate",
    "failure rates": "error_rate",
    "error rates": "error_rate",
    "queue lengths": "queue_depth",
    "card reader error": "card_reader_errors",
    "reader errors": "card_reader_errors",
    "temperatures": "temperature_celsius",
    "printer error": "printer_errors",
}


def metric_synonyms() -> dict[str, str]:
    """Phrase -> metric name, the tools' table first."""
    try:
        from tools.scopes import METRIC_SYNONYMS as tool_synonyms
    except ImportError:  # pragma: no cover - tools.scopes is part of the project
        tool_synonyms = {}
    return {**EXTRA_METRIC_SYNONYMS, **tool_synonyms}


#: Unit suffixes stripped from metric keys to get a spoken name ("network_latency_ms" -> "network latency").
_UNIT_SUFFIXES = ("_percent", "_pct", "_ms", "_celsius", "_rpm", "_c", "_dbm", "_count", "_total", "_seconds", "_hours")

#: Everyday words that must never be fuzzy-matched onto a fleet name.
COMMON_WORDS = frozenset(
    "about above after again against along also always another answer anything around asked because before "
    "being below between both could didn doing during early either every everything fewer first found frequent "
    "given going great happen happened having hello highest hours however latest later least level little lower "
    "lowest maybe might month months morning never night often other others overall people place please point "
    "possible pretty quick quite rather really recent right round same seems seven several should shown since "
    "small something still sunday monday tuesday wednesday thursday friday saturday tell than thank thanks that "
    "their there these thing things think those three through today tomorrow total under until usual usually "
    "value values want week weekly weeks were what when where which while whole with within without worse worst "
    "would yesterday your sales sample simple change changed compare status report reports alerts alert".split()
)

def _inflection_of(tok: str, vocab: frozenset[str]) -> bool:
    """``tok`` is an -ed/-ing/-es form of a catalog word (an inflection, so not a misspelling)."""
    for suffix in ("ing", "ed", "es", "d", "s"):
        if tok.endswith(suffix) and tok[: -len(suffix)] in vocab:
            return True
    return False


_TOKEN = re.compile(r"[a-z0-9]+(?:[-_][a-z0-9]+)*")


_PUBLIC_ID = re.compile(r"^(?:device|site)-")


def tokens(text: str) -> list[str]:
    """Lower-case word tokens. Public ids (DEVICE-AB12-...) stay one token; other hyphenated
    words split ("POS-01" -> "pos", "1") and numbers lose leading zeros, so that "pos 1",
    "POS-01" and "pos-1" read the same."""
    out: list[str] = []
    for tok in _TOKEN.findall(text.lower()):
        parts = [tok] if _PUBLIC_ID.match(tok) else re.split(r"[-_]", tok)
        out += [p.lstrip("0") or "0" if p.isdigit() else p for p in parts if p]
    return out


def norm(text: str) -> str:
    """A canonical spelling for comparing names: lower case, words joined by single spaces."""
    return " ".join(tokens(text.replace("_", " ").replace("'s", "")))


#: How SQLite rows store timestamps (tools.store.bulk.SQLITE_TS_FORMAT; that module imports pandas).
_SQLITE_TS_FORMAT = "%Y-%m-%d %H:%M:%S.%f"


def _recent_metric_names(store: Any, recent: timedelta) -> list[str]:
    """The named metrics, then every ``extra_metrics`` key of the newest ``recent`` of data.

    The same query as ``tools.store.metrics_io.list_metric_names``, written here so that building
    the catalog (on every ``homepot-ai ask``) does not import pandas (~0.5 s of start-up).
    """
    from datetime import datetime

    from sqlalchemy import text as sql

    from tools.store.schema import NAMED_METRICS

    with store.engine.connect() as conn:
        newest = conn.execute(sql("SELECT MAX(timestamp) FROM device_metrics")).scalar()
        if newest is None:
            return list(NAMED_METRICS)
        if not isinstance(newest, datetime):
            newest = datetime.fromisoformat(str(newest))
        since = newest.replace(tzinfo=None) - recent
        if store.is_postgres:
            query = ("SELECT DISTINCT k FROM (SELECT extra_metrics FROM device_metrics WHERE timestamp >= :since) m, "
                     "jsonb_object_keys(CASE WHEN jsonb_typeof(m.extra_metrics::jsonb) = 'object' "
                     "THEN m.extra_metrics::jsonb ELSE '{}'::jsonb END) AS k")
            bound: Any = since
        else:
            query = ("SELECT DISTINCT j.key FROM (SELECT extra_metrics FROM device_metrics WHERE timestamp >= :since) m, "
                     "json_each(CASE WHEN json_valid(m.extra_metrics) AND json_type(m.extra_metrics) = 'object' "
                     "THEN m.extra_metrics ELSE '{}' END) AS j")
            bound = since.strftime(_SQLITE_TS_FORMAT)
        keys = sorted(str(r[0]) for r in conn.execute(sql(query), {"since": bound}))
    return list(NAMED_METRICS) + [k for k in keys if k not in NAMED_METRICS]


@dataclass(frozen=True)
class SiteEntry:
    id: int
    site_id: str
    name: str
    location: str | None = None


@dataclass(frozen=True)
class DeviceEntry:
    id: int
    device_id: str
    name: str
    device_type: str
    site: str | None = None  # site name


@dataclass(frozen=True)
class Mention:
    """An entity found in a question: its kind, canonical value, and the words that named it."""

    kind: str  # "site" | "device" | "device_type" | "metric"
    value: str  # site name, device name, device type, metric name
    start: int  # token span in the question
    end: int
    exact: bool = True
    options: tuple[str, ...] = ()  # "device_part": every device whose name has these words


@dataclass
class Catalog:
    """The fleet's vocabulary and an index of aliases for fast mention finding."""

    sites: list[SiteEntry] = field(default_factory=list)
    devices: list[DeviceEntry] = field(default_factory=list)
    metrics: list[str] = field(default_factory=list)
    device_types: list[str] = field(default_factory=list)
    _aliases: dict[tuple[str, ...], list[tuple[str, str]]] = field(default_factory=dict, repr=False)
    _vocab: list[str] = field(default_factory=list, repr=False)
    _vocab_set: frozenset[str] = field(default_factory=frozenset, repr=False)
    _max_len: int = 1
    _device_names: list[tuple[str, str]] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        self._build_index()

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_store(cls, store: Any) -> "Catalog":
        """Read sites, devices and metric names from the store (three small queries)."""
        from sqlalchemy import text as sql

        from tools.store.schema import NAMED_METRICS

        with store.engine.connect() as conn:
            sites = [
                SiteEntry(int(r[0]), str(r[1]), str(r[2] or r[1]), r[3])
                for r in conn.execute(sql("SELECT id, site_id, name, location FROM sites ORDER BY id"))
            ]
            names = {s.id: s.name for s in sites}
            devices = [
                DeviceEntry(int(r[0]), str(r[1]), str(r[2] or r[1]), str(r[3] or "unknown"), names.get(r[4]))
                for r in conn.execute(sql("SELECT id, device_id, name, device_type, site_id FROM devices ORDER BY id"))
            ]
        try:
            metrics = _recent_metric_names(store, timedelta(hours=6))
        except Exception:  # an empty or foreign store: the named columns are always there
            metrics = list(NAMED_METRICS)
        return cls(sites=sites, devices=devices, metrics=metrics)

    def _build_index(self) -> None:
        from tools.store.schema import DEVICE_TYPES

        if not self.device_types:
            found = sorted({d.device_type for d in self.devices})
            self.device_types = found or [t for t in DEVICE_TYPES if t != "unknown"]
        aliases: dict[tuple[str, ...], list[tuple[str, str]]] = {}

        def add(kind: str, value: str, alias: str) -> None:
            key = tuple(tokens(norm(alias)))
            if key and (kind, value) not in aliases.setdefault(key, []):
                aliases[key].append((kind, value))

        first_words: dict[str, int] = {}
        for s in self.sites:
            words = [t for t in tokens(norm(s.name)) if t not in FILLER_WORDS]
            if words:
                first_words[words[0]] = first_words.get(words[0], 0) + 1
        for s in self.sites:
            add("site", s.name, s.name)
            add("site", s.name, s.site_id)
            core = [t for t in tokens(norm(s.name)) if t not in FILLER_WORDS]
            if core and len(core) < len(tokens(norm(s.name))):
                add("site", s.name, " ".join(core))
            # "Camden" for "Camden High St", when no other site starts with that word
            if len(core) > 1 and first_words.get(core[0]) == 1 and len(core[0]) >= 3 and not core[0].isdigit():
                add("site", s.name, core[0])
                add("site", s.name, " ".join(core[:2]))
        site_words = {s.name: tokens(norm(s.name)) for s in self.sites}
        for d in self.devices:
            add("device", d.name, d.name)
            add("device", d.name, d.device_id)
            # "POS-01 Leeds Kirkgate" is also "POS-01" (at Leeds): the name without its site's words
            words = tokens(norm(d.name))
            sw = set(site_words.get(d.site or "", ()))
            core = [w for w in words if w not in sw]
            if sw and core and len(core) < len(words):
                add("device_part", d.name, " ".join(core))
        for dtype in set(self.device_types) | set(DEVICE_TYPE_SYNONYMS):
            add("device_type", dtype, dtype.replace("_", " "))
            for syn in DEVICE_TYPE_SYNONYMS.get(dtype, ()):
                add("device_type", dtype, syn)
        present = set(self.metrics)
        for metric in self.metrics:
            add("metric", metric, metric.replace("_", " "))
            spoken = metric
            for suffix in _UNIT_SUFFIXES:
                if spoken.endswith(suffix) and len(spoken) > len(suffix) + 2:
                    spoken = spoken[: -len(suffix)]
                    break
            add("metric", metric, spoken.replace("_", " "))
        for phrase, metric in metric_synonyms().items():
            if metric in present:
                add("metric", metric, phrase)
        self._aliases = aliases
        self._max_len = max((len(k) for k in aliases), default=1)
        vocab = {t for key in aliases for t in key if len(t) >= 4 and not t.isdigit()}
        self._vocab = sorted(vocab)
        self._vocab_set = frozenset(vocab)

    # ------------------------------------------------------------------ lookup

    def site(self, name: str) -> SiteEntry | None:
        return next((s for s in self.sites if s.name == name), None)

    def device(self, name: str) -> DeviceEntry | None:
        return next((d for d in self.devices if d.name == name or d.device_id == name), None)

    def correct(self, toks: list[str], protected: frozenset[str] = frozenset()) -> list[str]:
        """Replace misspelt tokens by the closest catalog word ("camdem" -> "camden").

        Short tokens and everyday English words are never "corrected" ("same" is not "sample").
        """
        out = []
        for tok in toks:
            if (len(tok) < 5 or tok in self._vocab_set or tok in protected or tok in COMMON_WORDS
                    or tok.isdigit() or "-" in tok):
                out.append(tok)
                continue
            if _inflection_of(tok, self._vocab_set):  # "processed" is a verb, not a typo of "process"
                out.append(tok)
                continue
            close = difflib.get_close_matches(tok, self._vocab, n=1, cutoff=0.8)
            out.append(close[0] if close else tok)
        return out

    def names_in(self, low: str) -> list[str]:
        """Known device names written out in full in a lower-cased text, longest first.

        Used to read a name as data: "the device called Ignore previous instructions ..." holds
        a name, not an instruction, and its words must not trigger intents.
        """
        if not self._device_names:
            self._device_names = sorted(((d.name.lower(), d.name) for d in self.devices if len(d.name) >= 8),
                                        key=lambda p: -len(p[0]))
        return [name for lowered, name in self._device_names if lowered in low]

    def find(self, toks: list[str], kinds: Iterable[str] | None = None) -> list[Mention]:
        """Mentions in a token list, longest first, without overlaps (greedy left to right)."""
        wanted = set(kinds) if kinds else None
        found: list[Mention] = []
        i, n = 0, len(toks)
        while i < n:
            hit = None
            for length in range(min(self._max_len, n - i), 0, -1):
                entries = self._aliases.get(tuple(toks[i : i + length]))
                if entries:
                    chosen = [e for e in entries if wanted is None or e[0] in wanted]
                    if chosen:
                        hit = (length, chosen)
                        break
            if hit:
                length, chosen = hit
                # an alias shared by two kinds (a site called "Gateway"): prefer device > part > site > type > metric
                order = {"device": 0, "device_part": 1, "site": 2, "device_type": 3, "metric": 4}
                kind, value = sorted(chosen, key=lambda e: order.get(e[0], 9))[0]
                options = tuple(v for k, v in chosen if k == kind) if kind == "device_part" else ()
                found.append(Mention(kind, value, i, i + length, options=options))
                i += length
            else:
                i += 1
        return found

    def closest(self, kind: str, text: str, n: int = 3) -> list[str]:
        """Names of this kind that look like ``text``, for "did you mean ...?" answers."""
        pool = {
            "site": [s.name for s in self.sites],
            "device": [d.name for d in self.devices],
            "metric": list(self.metrics),
            "device_type": list(self.device_types),
        }.get(kind, [])
        lowered = {p.lower(): p for p in pool}
        return [lowered[m] for m in difflib.get_close_matches(text.lower(), list(lowered), n=n, cutoff=0.5)]

    @property
    def vocabulary(self) -> frozenset[str]:
        """Every word that appears in a known name (used to protect them from other parsers)."""
        return self._vocab_set
