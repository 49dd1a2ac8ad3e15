"""Pool features: embedders and the quality/embedding files selectors read."""

from __future__ import annotations

import numpy as np
import pytest

from mdaq.features.embed import HashingEmbedder, SentenceEmbedder, sample_text
from mdaq.features.pool import load_pool, write_features
from mdaq.io import write_samples


def test_hashing_embedder_is_deterministic_unit_rows():
    e = HashingEmbedder(32)
    a = e.encode(["Guten Tag", "こんにちは", "Guten Tag"])
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1, rtol=1e-6)
    np.testing.assert_array_equal(a[0], a[2])


def test_sentence_embedder_order_and_norm(tiny_encoder):
    e = SentenceEmbedder(tiny_encoder, max_len=32, batch_size=2)
    texts = ["kurz", "ein deutlich längerer Satz mit vielen Wörtern", "日本語", "x"]
    batched = e.encode(texts)
    single = np.vstack([e.encode([t]) for t in texts])
    np.testing.assert_allclose(batched, single, atol=1e-5)
    assert batched.shape == (4, 32) and e.dim == 32


def test_features_round_trip_and_shape_check(toy_samples, tmp_path):
    samples = [s for s in toy_samples if s.lang == "ja"]
    write_samples(tmp_path / "pool.jsonl", samples)
    emb = HashingEmbedder(16).encode([sample_text(s.instruction, s.input, s.output) for s in samples])
    write_features(tmp_path / "f", np.arange(len(samples), dtype=float), emb)
    pool = load_pool("ja", tmp_path / "pool.jsonl", tmp_path / "f")
    assert pool.quality.dtype == np.float32 and pool.embeddings.shape == (10, 16)
    write_features(tmp_path / "bad", np.zeros(3), emb)
    with pytest.raises(ValueError, match="quality has shape"):
        load_pool("ja", tmp_path / "pool.jsonl", tmp_path / "bad")
