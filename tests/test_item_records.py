"""Per-item records of the judge-free evaluation: what is scored (no EOS, one prompt cut per pair), the records
themselves, and the metrics computed from them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mdaq.config import EvaluateConfig
from mdaq.evaluation.heldout import evaluate_heldout, item_records, metrics_from_items
from mdaq.io import ITEM_COLUMNS, read_items, write_items
from mdaq.models.lm import IGNORE, encode_pair, encode_responses, load_causal_lm

pytest.importorskip("torch")


def test_one_prompt_cut_for_both_responses(tiny_lm):
    tok, _ = load_causal_lm(tiny_lm)
    prompt = "mot " * 60
    short, long = encode_responses(tok, prompt, ["oui", "non " * 30], max_len=64, eos=False)
    n_prompt = [e.labels.count(IGNORE) for e in (short, long)]
    assert n_prompt[0] == n_prompt[1] and short.input_ids[: n_prompt[0]] == long.input_ids[: n_prompt[1]]
    assert short.prompt_truncated and long.prompt_truncated and not short.response_truncated
    # encoded one at a time, the short response would have seen a longer prompt
    alone = encode_pair(tok, prompt, "oui", 64, eos=False)
    assert alone.labels.count(IGNORE) > n_prompt[0]
    # `reserve` reproduces the shared cut for one response at a time (lm-eval's engine)
    longest = len(tok("non " * 30, add_special_tokens=False)["input_ids"])
    assert encode_responses(tok, prompt, ["oui"], 64, eos=False, reserve=longest)[0] == short


def test_no_eos_is_scored(tiny_lm):
    tok, _ = load_causal_lm(tiny_lm)
    with_eos = encode_pair(tok, "a", "b c", 32)
    without = encode_pair(tok, "a", "b c", 32, eos=False)
    assert with_eos.input_ids[-1] == tok.eos_token_id and tok.eos_token_id not in without.labels
    assert with_eos.n_response == without.n_response + 1


def test_records_and_metrics_agree(tiny_lm, tmp_path):
    rows = [
        {"id": f"x{i}", "lang": "fr", "source_index": i, "instruction": f"Dis {i}.", "chosen": f"mot {i}"}
        | {"rejected": "zz " * (i + 1)}
        for i in range(6)
    ]
    out = evaluate_heldout(tiny_lm, None, rows, EvaluateConfig(batch_size=4, max_seq_len=32), return_items=True)
    items = out["items"]
    assert list(items.columns) == list(ITEM_COLUMNS) and list(items["item"]) == [r["id"] for r in rows]
    assert out["expert_pref_acc"] == pytest.approx(items["correct"].mean())
    assert out["ref_nll"] == pytest.approx(-items["chosen_lp"].sum() / items["chosen_n"].sum())
    margin = items["chosen_lp"] / items["chosen_n"] - items["rejected_lp"] / items["rejected_n"]
    np.testing.assert_allclose(items["margin"], margin)
    assert out["ref_nll_se"] > 0 and out["truncated_prompt"] == 0.0
    write_items(tmp_path / "items.csv", items)
    back = read_items(tmp_path / "items.csv")
    pd.testing.assert_frame_equal(back, items, check_exact=False, rtol=1e-9, check_dtype=False)
    assert metrics_from_items(back)["expert_pref_acc"] == out["expert_pref_acc"]


def test_tie_counts_half_and_truncation_shares():
    rows = [{"id": "a", "lang": "de"}, {"id": "b", "lang": "de"}]
    items = item_records(rows, (np.array([-2.0, -2.0]), np.array([2, 2])), (np.array([-2.0, -6.0]), np.array([2, 3])))
    assert items["correct"].tolist() == [0.5, 1.0] and items["margin"].tolist() == [0.0, 1.0]
    items["chosen_truncated"] = [True, False]
    assert metrics_from_items(items)["truncated_chosen"] == 0.5


def test_read_items_names_a_missing_column(tmp_path):
    from mdaq.errors import DataError

    pd.DataFrame({"lang": ["de"], "item": ["a"]}).to_csv(tmp_path / "items.csv", index=False)
    with pytest.raises(DataError, match="missing column.*source_index"):
        read_items(tmp_path / "items.csv")
