"""Long-term memory in ChromaDB: conversations, incidents, preferences and runbook knowledge.

Four collections, one job each:

``conversations``  the rolling summary of each thread (one entry per thread, replaced on update);
``incidents``      alerts together with how they were resolved (from the store or the agent);
``preferences``    what a user asked us to remember about how they like answers;
``knowledge``      runbooks: Markdown files chunked by heading, re-indexed only when a file's
                   content hash changes.

Retrieval (:meth:`LongTermMemory.search`) runs per turn over any subset of them, keeps snippets
above a relevance threshold and tags each with its source, so the agent can cite
"runbook card_reader_errors.md > Checks" instead of repeating text it cannot place.

Storage is a ``PersistentClient`` under ``<data_dir>/chroma`` by default and an ``HttpClient`` when
``HOMEPOT_AI_CHROMA_HOST`` is set. We always pass our own embedding function (chromadb's default
one would try to download a model) and turn chromadb's telemetry off. A physical collection's
name carries the embedding function's name (``knowledge__homepot_minilm_onnx``): vectors from
different models must never share an index, and when the embedding changes the stored documents
are re-embedded into the new collection instead of being lost.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from memory.embeddings import embedding_from_settings
from prompts import load_prompt

COLLECTIONS: tuple[str, ...] = ("conversations", "incidents", "preferences", "knowledge")
RUNBOOKS_DIR = Path(__file__).resolve().parent / "runbooks"

#: Relevance thresholds (cosine similarity) per embedding: below it a snippet is noise.
#: MiniLM: unrelated sentences score about 0.0-0.15, a matching runbook section 0.35+.
#: Hashing shares only vocabulary, so its scores run lower.
DEFAULT_MIN_SCORE: dict[str, float] = {"homepot_minilm_onnx": 0.25, "homepot_hashing": 0.15, "homepot_ollama": 0.35}
#: A chunk longer than this (characters) is split at paragraph boundaries.
MAX_CHUNK_CHARS = 1400


class MemoryError_(RuntimeError):
    """A memory problem worth one sentence to the user (bad collection name, server down)."""


@dataclass(frozen=True)
class Snippet:
    """One retrieved memory: its text, where it came from and how relevant it is (0..1)."""

    text: str
    collection: str
    source: str
    score: float
    id: str
    metadata: dict[str, Any] = field(default_factory=dict)

    def cite(self) -> str:
        """A short source tag for answers and tool results, e.g. ``knowledge: x.md > Checks``."""
        return f"{self.collection}: {self.source}"

    def as_dict(self) -> dict[str, Any]:
        return {"text": self.text, "collection": self.collection, "source": self.source,
                "score": round(self.score, 3), "id": self.id}


@dataclass(frozen=True)
class IndexReport:
    """What :meth:`LongTermMemory.index_runbooks` did, for the CLI and tests."""

    added: list[str]
    updated: list[str]
    unchanged: list[str]
    removed: list[str]
    chunks: int

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed)


@dataclass(frozen=True)
class Chunk:
    heading: str
    text: str


def chunk_markdown(text: str, *, title_fallback: str = "") -> tuple[str, list[Chunk]]:
    """Split a runbook at its ``##`` headings; each chunk is prefixed with title and heading.

    The title prefix matters for retrieval: a "Checks" section alone says little, "Card reader
    errors > Checks" says where it belongs. Text before the first ``##`` becomes "Overview".
    Long sections are split at blank lines so no chunk exceeds :data:`MAX_CHUNK_CHARS`.
    """
    title = title_fallback
    sections: list[tuple[str, list[str]]] = [("Overview", [])]
    for line in text.splitlines():
        h1 = re.match(r"^#\s+(.+?)\s*#*\s*$", line)
        h2 = re.match(r"^#{2,3}\s+(.+?)\s*#*\s*$", line)
        if h1 and not title:
            title = h1.group(1)
            continue
        if h1:
            continue
        if h2:
            sections.append((h2.group(1), []))
            continue
        sections[-1][1].append(line)
    chunks: list[Chunk] = []
    for heading, lines in sections:
        body = "\n".join(lines).strip()
        if not body:
            continue
        for part in _split_long(body):
            chunks.append(Chunk(heading, f"{title} > {heading}\n{part}"))
    return title, chunks


def _split_long(body: str) -> list[str]:
    if len(body) <= MAX_CHUNK_CHARS:
        return [body]
    parts: list[str] = []
    current = ""
    for para in re.split(r"\n\s*\n", body):
        if current and len(current) + len(para) + 2 > MAX_CHUNK_CHARS:
            parts.append(current)
            current = para
        else:
            current = f"{current}\n\n{para}" if current else para
    if current:
        parts.append(current)
    return parts


def _utcnow() -> str:
    return datetime.now(timezone.utc).replace(tzinfo=None).isoformat(timespec="seconds")


def _clean_meta(meta: dict[str, Any]) -> dict[str, Any]:
    """Chroma metadata values must be str/int/float/bool; drop None, stringify the rest."""
    out: dict[str, Any] = {}
    for key, value in meta.items():
        if value is None:
            continue
        out[key] = value if isinstance(value, (str, int, float, bool)) else str(value)
    return out


def make_client(settings: Any) -> Any:
    """A chromadb client for the settings: HttpClient for a configured server, else persistent."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
    host = settings.get("HOMEPOT_AI_CHROMA_HOST")
    if host:
        try:
            return chromadb.HttpClient(host=host, port=int(settings.get("HOMEPOT_AI_CHROMA_PORT")),
                                       settings=chroma_settings)
        except Exception as exc:  # chromadb raises a bare ValueError/ConnectError here
            raise MemoryError_(
                f"Could not reach the Chroma server at {host}:{settings.get('HOMEPOT_AI_CHROMA_PORT')} "
                f"({exc}); start it or unset HOMEPOT_AI_CHROMA_HOST to use the local store."
            ) from exc
    path = settings.data_dir / "chroma"
    path.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(path), settings=chroma_settings)


class LongTermMemory:
    """The four ChromaDB collections behind one small API. Build with :meth:`from_settings`."""

    def __init__(self, client: Any, embedding_function: Any, *, min_score: float | None = None,
                 runbooks_dir: Path | None = None) -> None:
        self.client = client
        self.embedding_function = embedding_function
        self.ef_name: str = embedding_function.name()
        self.min_score = DEFAULT_MIN_SCORE.get(self.ef_name, 0.25) if min_score is None else float(min_score)
        self.runbooks_dir = runbooks_dir or RUNBOOKS_DIR
        self._collections: dict[str, Any] = {}

    @classmethod
    def from_settings(cls, settings: Any, *, embedding_function: Any | None = None) -> "LongTermMemory":
        """Client, embedding function, threshold and runbook folder from the settings."""
        ef = embedding_function or embedding_from_settings(settings)
        raw_min = _setting(settings, "HOMEPOT_AI_MEMORY_MIN_SCORE", "")
        min_score = float(raw_min) if raw_min not in ("", None) else None
        folder = _setting(settings, "HOMEPOT_AI_RUNBOOKS_DIR", "")
        return cls(make_client(settings), ef, min_score=min_score,
                   runbooks_dir=Path(folder).expanduser() if folder else None)

    # ------------------------------------------------------------------ collections
    def physical_name(self, collection: str) -> str:
        return f"{collection}__{self.ef_name}"

    def collection(self, name: str) -> Any:
        """The chroma collection for a logical name, created (or migrated) on first use."""
        if name not in COLLECTIONS:
            raise MemoryError_(f"Unknown memory collection {name!r}; use one of {', '.join(COLLECTIONS)}.")
        if name not in self._collections:
            col = self.client.get_or_create_collection(
                self.physical_name(name),
                embedding_function=self.embedding_function,
                configuration={"hnsw": {"space": "cosine"}},
                metadata={"homepot_collection": name},
            )
            if name != "knowledge" and col.count() == 0:
                self._adopt_from_other_embeddings(name, col)
            self._collections[name] = col
        return self._collections[name]

    def _adopt_from_other_embeddings(self, name: str, target: Any) -> None:
        """Re-embed documents stored under another embedding function (the model changed)."""
        for other in self.client.list_collections():
            other_name = getattr(other, "name", other)
            if other_name == target.name or not str(other_name).startswith(f"{name}__"):
                continue
            try:  # reading documents embeds nothing; the stored function is only rebuilt
                got = self.client.get_collection(other_name).get(include=["documents", "metadatas"])
            except Exception:  # an embedding class we cannot rebuild: leave that collection be
                continue
            if got["ids"]:
                target.upsert(ids=got["ids"], documents=got["documents"], metadatas=got["metadatas"])

    def count(self, name: str) -> int:
        return int(self.collection(name).count())

    # ------------------------------------------------------------------ writing
    def remember_conversation(self, thread_id: str, summary: str, *, user: str | None = None) -> str:
        """Store (or replace) the summary of one conversation thread; returns its id."""
        if not summary.strip():
            raise MemoryError_("A conversation summary cannot be empty.")
        doc_id = f"conv:{thread_id}"
        self.collection("conversations").upsert(
            ids=[doc_id], documents=[summary.strip()],
            metadatas=[_clean_meta({"thread_id": thread_id, "user": user, "updated_at": _utcnow()})],
        )
        return doc_id

    def remember_incident(self, title: str, resolution: str, *, alert_id: int | str | None = None,
                          device_id: str | None = None, site: str | None = None,
                          severity: str | None = None, category: str | None = None,
                          resolved_at: datetime | str | None = None) -> str:
        """Store an alert with its resolution, so the next similar alert can reuse the fix."""
        if not title.strip():
            raise MemoryError_("An incident needs a title.")
        where = ", ".join(p for p in (f"device {device_id}" if device_id else "", f"site {site}" if site else "") if p)
        head = f"Incident: {title.strip()}" + (f" ({severity})" if severity else "") + (f" on {where}" if where else "")
        text = f"{head}.\nResolution: {resolution.strip() or 'not recorded'}"
        key = str(alert_id) if alert_id is not None else hashlib.sha1(text.encode()).hexdigest()[:16]
        doc_id = f"incident:{key}"
        self.collection("incidents").upsert(
            ids=[doc_id], documents=[text],
            metadatas=[_clean_meta({"alert_id": str(alert_id) if alert_id is not None else None,
                                    "device_id": device_id, "site": site, "severity": severity,
                                    "category": category, "title": title.strip()[:200],
                                    "resolved_at": resolved_at.isoformat() if isinstance(resolved_at, datetime) else resolved_at,
                                    "updated_at": _utcnow()})],
        )
        return doc_id

    def remember_incidents_from_store(self, store: Any, *, limit: int = 500) -> int:
        """Copy resolved alerts that carry resolution notes from the store into ``incidents``.

        Idempotent (ids are the alert ids); returns how many alerts were written.
        """
        from tools.store.bulk import read_frame

        frame = read_frame(
            store,
            "SELECT a.id, a.title, a.description, a.severity, a.category, a.device_id, "
            "a.resolution_notes, a.resolved_at, s.name AS site "
            "FROM alerts a LEFT JOIN sites s ON s.id = a.site_id "
            "WHERE a.status = 'resolved' AND a.resolution_notes IS NOT NULL AND a.resolution_notes <> '' "
            "ORDER BY a.resolved_at DESC LIMIT :limit",
            {"limit": int(limit)},
        )
        for row in frame.itertuples(index=False):
            title = row.title if not row.description else f"{row.title}: {row.description}"
            self.remember_incident(title, row.resolution_notes, alert_id=int(row.id), device_id=row.device_id,
                                   site=row.site, severity=row.severity, category=row.category,
                                   resolved_at=None if row.resolved_at is None else str(row.resolved_at))
        return len(frame)

    def remember_preference(self, user: str, text: str) -> str:
        """Store one thing a user wants remembered ("I prefer metric units", "my site is Camden")."""
        if not text.strip():
            raise MemoryError_("A preference cannot be empty.")
        digest = hashlib.sha1(f"{user}\n{text.strip().lower()}".encode()).hexdigest()[:16]
        doc_id = f"pref:{user}:{digest}"
        self.collection("preferences").upsert(
            ids=[doc_id], documents=[text.strip()],
            metadatas=[{"user": user, "updated_at": _utcnow()}],
        )
        return doc_id

    def preferences_for(self, user: str) -> list[str]:
        """Every preference a user stored, oldest first (small: it goes into the system prompt)."""
        got = self.collection("preferences").get(where={"user": user}, include=["documents", "metadatas"])
        pairs = sorted(zip(got["metadatas"], got["documents"]), key=lambda p: str(p[0].get("updated_at", "")))
        return [doc for _, doc in pairs]

    def forget(self, collection: str, ids: Sequence[str]) -> None:
        self.collection(collection).delete(ids=list(ids))

    # ------------------------------------------------------------------ knowledge
    def index_runbooks(self, folder: Path | str | None = None) -> IndexReport:
        """Index the Markdown runbooks of ``folder`` (default: settings or the starter set).

        Only files whose content hash changed are re-embedded; files that disappeared from the
        folder lose their chunks. Safe to call on every start.
        """
        root = Path(folder).expanduser() if folder else self.runbooks_dir
        if not root.is_dir():
            raise MemoryError_(f"Runbook folder {root} does not exist; set HOMEPOT_AI_RUNBOOKS_DIR to a folder of .md files.")
        col = self.collection("knowledge")
        folder_key = str(root.resolve())
        existing = col.get(where={"folder": folder_key}, include=["metadatas"])
        known: dict[str, str] = {}
        for meta in existing["metadatas"]:
            known[str(meta["file"])] = str(meta["file_hash"])
        files = sorted(p for p in root.rglob("*.md") if p.is_file() and not p.name.startswith("_"))
        added, updated, unchanged = [], [], []
        chunks_written = 0
        seen: set[str] = set()
        for path in files:
            rel = path.relative_to(root).as_posix()
            seen.add(rel)
            content = path.read_text(encoding="utf-8")
            digest = hashlib.sha256(content.encode()).hexdigest()
            if known.get(rel) == digest:
                unchanged.append(rel)
                continue
            if rel in known:
                col.delete(where={"$and": [{"folder": folder_key}, {"file": rel}]})
                updated.append(rel)
            else:
                added.append(rel)
            title, chunks = chunk_markdown(content, title_fallback=path.stem.replace("_", " "))
            if not chunks:
                continue
            base = hashlib.sha1(f"{folder_key}/{rel}".encode()).hexdigest()[:12]
            col.add(
                ids=[f"kb:{base}:{i}" for i in range(len(chunks))],
                documents=[c.text for c in chunks],
                metadatas=[{"folder": folder_key, "file": rel, "file_hash": digest, "title": title,
                            "heading": c.heading, "chunk": i} for i, c in enumerate(chunks)],
            )
            chunks_written += len(chunks)
        removed = sorted(set(known) - seen)
        for rel in removed:
            col.delete(where={"$and": [{"folder": folder_key}, {"file": rel}]})
        return IndexReport(added, updated, unchanged, removed, chunks_written)

    def ensure_runbooks(self) -> IndexReport:
        """Index the configured runbook folder (cheap when nothing changed)."""
        return self.index_runbooks(self.runbooks_dir)

    # ------------------------------------------------------------------ reading
    def recall(self, query: str, *, user: str | None = None, k: int = 4) -> tuple[str, str]:
        """``(memories, preferences)`` prompt text for one turn (``prompts.system_prompt``).

        Searches every collection but preferences for ``query``; the user's preferences are all
        included (they are few and always apply). Either string is empty when there is nothing.
        """
        snippets = self.search(query, [c for c in COLLECTIONS if c != "preferences"], k=k)
        prefs = self.preferences_for(user) if user else []
        return format_snippets(snippets), "\n".join(f"- {p}" for p in prefs)

    def search(self, query: str, collections: Iterable[str] | None = None, k: int = 4,
               min_score: float | None = None, *, user: str | None = None) -> list[Snippet]:
        """The ``k`` most relevant snippets over ``collections`` (default all), best first.

        Snippets below ``min_score`` (cosine similarity; default per embedding) are dropped, so
        an unrelated question returns nothing rather than the least bad match. ``user`` limits
        the preferences collection to that user's entries.
        """
        if not query or not query.strip():
            return []
        names = list(collections) if collections else list(COLLECTIONS)
        threshold = self.min_score if min_score is None else float(min_score)
        k = max(1, int(k))
        vector = self.embedding_function([query])[0]
        found: list[Snippet] = []
        for name in names:
            col = self.collection(name)
            total = col.count()
            if total == 0:
                continue
            where = {"user": user} if (name == "preferences" and user) else None
            res = col.query(query_embeddings=[vector], n_results=min(k, total), where=where,
                            include=["documents", "metadatas", "distances"])
            for doc_id, doc, meta, dist in zip(res["ids"][0], res["documents"][0], res["metadatas"][0],
                                               res["distances"][0]):
                score = 1.0 - float(dist)
                if score >= threshold:
                    found.append(Snippet(doc, name, _source_of(name, meta or {}, doc_id), score, doc_id, dict(meta or {})))
        found.sort(key=lambda s: s.score, reverse=True)
        return found[:k]


def format_snippets(snippets: Sequence[Snippet], *, max_chars: int = 600) -> str:
    """Snippets as a prompt block (``prompts/memory_context.md``), each under its source tag.

    Empty string when nothing was recalled, so the caller can leave the block out.
    """
    if not snippets:
        return ""
    body = "\n\n".join(
        f"[{s.cite()} | relevance {s.score:.2f}]\n{s.text[:max_chars]}" for s in snippets
    )
    return load_prompt("memory_context", snippets=body)


def _source_of(collection: str, meta: dict[str, Any], doc_id: str) -> str:
    if collection == "knowledge":
        return f"{meta.get('file', '?')} > {meta.get('heading', '?')}"
    if collection == "conversations":
        return f"thread {meta.get('thread_id', doc_id)}"
    if collection == "incidents":
        bits = [f"alert {meta['alert_id']}" if meta.get("alert_id") else doc_id]
        if meta.get("device_id"):
            bits.append(str(meta["device_id"]))
        return ", ".join(bits)
    if collection == "preferences":
        return f"preference of {meta.get('user', '?')}"
    return doc_id


def _setting(settings: Any, name: str, default: Any) -> Any:
    try:
        value = settings.get(name)
    except KeyError:
        return default
    return default if value is None else value
