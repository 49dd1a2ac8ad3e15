"""IFD features: same response tokens in both passes, the ratio's direction, files, and the precision switch."""

from __future__ import annotations

import numpy as np
import pytest

from mdaq import Sample
from mdaq.config import IFDConfig
from mdaq.features.ifd import ifd_scores, unconditional, write_ifd
from mdaq.models.lm import IGNORE, encode_pair, encoded_logprobs, format_prompt, load_causal_lm

from .conftest import needs_fast_bf16

torch = pytest.importorskip("torch")


def test_unconditional_keeps_exactly_the_response_tokens(tiny_lm):
    tok, _ = load_causal_lm(tiny_lm)
    cond = encode_pair(tok, format_prompt("Décris un chat."), "Un chat noir. " * 40, max_len=48)
    unc = unconditional(cond, tok.bos_token_id or tok.eos_token_id)
    assert [t for t in unc.labels if t != IGNORE] == [t for t in cond.labels if t != IGNORE]
    assert unc.labels[0] == IGNORE and len(unc.input_ids) == unc.n_response + 1


def test_ifd_is_the_ratio_of_the_two_losses(tiny_lm):
    tok, model = load_causal_lm(tiny_lm)
    samples = [Sample.create("fr", f"Écris le nombre {i}.", "", f"{i} " * (i + 1)) for i in range(5)]
    out = ifd_scores(model, tok, samples, IFDConfig(max_seq_len=64, batch_size=2))
    assert set(out) == {"ifd", "loss_conditional", "loss_unconditional"}
    np.testing.assert_allclose(out["ifd"], out["loss_conditional"] / out["loss_unconditional"], rtol=1e-6)
    # the conditional loss equals the shared scorer's per-token NLL of the same pairs as training encodes them
    # (EOS included: IFD scores the training samples; the held-out evaluation leaves EOS out)
    enc = [encode_pair(tok, format_prompt(x.instruction), x.output, 64) for x in samples]
    s, n = encoded_logprobs(model, tok, enc, 3)
    np.testing.assert_allclose(out["loss_conditional"], -s / n, rtol=1e-5)


def test_ifd_is_finite_and_independent_of_batch_size(tiny_lm):
    """Padding must not leak into the scores: batch size 1 and 2 give the same IFD."""
    tok, model = load_causal_lm(tiny_lm)
    samples = [
        Sample.create("de", "Wiederhole: Hallo Welt", "", "Hallo Welt"),
        Sample.create("de", "Nenne drei Farben.", "", "Rot, Grün, Blau."),
    ]
    a = ifd_scores(model, tok, samples, IFDConfig(max_seq_len=64, batch_size=1))
    b = ifd_scores(model, tok, samples, IFDConfig(max_seq_len=64, batch_size=2))
    assert np.isfinite(a["ifd"]).all()
    np.testing.assert_allclose(a["ifd"], b["ifd"], rtol=1e-4)


@needs_fast_bf16
def test_bf16_precision_is_close_to_fp32(tiny_lm):
    tok, model = load_causal_lm(tiny_lm)
    samples = [Sample.create("ja", "色を一つ挙げてください。", "", "青です。" * (i + 1)) for i in range(3)]
    fp32 = ifd_scores(model, tok, samples, IFDConfig(max_seq_len=64, precision="fp32"))
    bf16 = ifd_scores(model, tok, samples, IFDConfig(max_seq_len=64, precision="bf16"))
    np.testing.assert_allclose(bf16["loss_conditional"], fp32["loss_conditional"], rtol=0.05)
    with pytest.raises(ValueError, match="precision"):
        ifd_scores(model, tok, samples, IFDConfig(precision="fp8"))


def test_write_ifd_roundtrip_through_load_pool(tmp_path, toy_pool):
    from mdaq.features.pool import load_pool
    from mdaq.io import write_samples

    n = len(toy_pool)
    scores = {k: np.linspace(0.1, 0.9, n) for k in ("ifd", "loss_conditional", "loss_unconditional")}
    write_ifd(tmp_path / "ifd", scores)
    write_samples(tmp_path / "pool.jsonl", toy_pool.samples)
    pool = load_pool("de", tmp_path / "pool.jsonl", ifd_dir=tmp_path / "ifd")
    np.testing.assert_allclose(pool.ifd, scores["ifd"], rtol=1e-6)
    assert pool.quality is None and pool.embeddings is None
