"""Judge-free metrics as lm-eval tasks on local files: equal to mdaq.evaluation.heldout on a tiny random LM, bad
input."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from mdaq.config import EvaluateConfig
from mdaq.errors import DataError
from mdaq.evaluation.heldout import evaluate_heldout, sequence_logprobs
from mdaq.evaluation.lm_eval_tasks import utils as task_utils
from mdaq.models.lm import format_prompt, load_causal_lm

pytest.importorskip("lm_eval")
torch = pytest.importorskip("torch")

# Mixed languages and scripts, an input field, a response starting with a newline and one with a leading space.
ROWS = [
    {
        "id": "de-1",
        "lang": "de",
        "instruction": "Nenne eine Farbe.",
        "input": "",
        "chosen": "Blau ist eine Farbe.",
        "rejected": "Blue.",
    },
    {
        "id": "de-2",
        "lang": "de",
        "instruction": "Übersetze ins Englische.",
        "input": "Das Haus ist groß.",
        "chosen": "The house is big.",
        "rejected": "The house is tall and big, yes.",
    },
    {
        "id": "ja-1",
        "lang": "ja",
        "instruction": "色を一つ挙げてください。",
        "input": "",
        "chosen": "青です。",
        "rejected": "ブルー",
    },
    {"id": "ja-2", "lang": "ja", "instruction": "2+2は？", "input": "", "chosen": "4です。", "rejected": "答えは四。"},
    {
        "id": "ru-1",
        "lang": "ru",
        "instruction": "Как дела?",
        "input": "",
        "chosen": "Хорошо, спасибо!",
        "rejected": "Good, thanks!",
    },
    {
        "id": "ar-1",
        "lang": "ar",
        "instruction": "ما هي عاصمة فرنسا؟",
        "input": "",
        "chosen": "باريس هي عاصمة فرنسا.",
        "rejected": "باريس",
    },
    {
        "id": "zh-1",
        "lang": "zh",
        "instruction": "写一句问候。",
        "input": "对朋友",
        "chosen": "\n你好，朋友！",
        "rejected": " 你好",
    },
    {"id": "no-1", "lang": "no", "instruction": "Hva er 2+2?", "chosen": "Fire.", "rejected": "4"},  # no "input"
]

CFG = EvaluateConfig(batch_size=4, device="cpu")


def _write(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def heldout(tmp_path):
    return _write(tmp_path / "mixed.jsonl", ROWS)


def _assert_matches_evaluate(out, base, adapter, rows=ROWS, cfg=CFG):
    """lm-eval's numbers equal mdaq.evaluation.heldout's: per pair (log-probs, token counts) and aggregated."""
    ref = evaluate_heldout(base, adapter, rows, cfg, return_items=True)
    assert out["n"] == ref["n"] == len(rows)
    assert out["expert_pref_acc"] == ref["expert_pref_acc"]
    assert out["n_ref_tokens"] == ref["n_ref_tokens"]
    assert out["ref_nll"] == pytest.approx(ref["ref_nll"], rel=1e-4)
    # lm-eval's SE of a mean uses n - 1; preference_metrics' binomial SE uses n (equal up to sqrt(n / (n - 1)))
    n, acc = out["n"], out["expert_pref_acc"]
    wins = np.array(
        [task_utils._win(i["chosen_lp"] / i["chosen_n"], i["rejected_lp"] / i["rejected_n"]) for i in out["items"]]
    )
    assert wins.mean() == acc
    assert out["expert_pref_acc_se"] == pytest.approx(wins.std(ddof=1) / math.sqrt(n))
    if not (wins == 0.5).any():
        assert out["expert_pref_acc_se"] == pytest.approx(ref["expert_pref_acc_se"] * math.sqrt(n / (n - 1)))

    tok, model = load_causal_lm(base, adapter=adapter)
    prompts = [format_prompt(r["instruction"], r.get("input", "")) for r in rows]
    for key in ("chosen", "rejected"):
        sums, counts = sequence_logprobs(model, tok, prompts, [r[key] for r in rows], cfg)
        if not ref["items"]["prompt_truncated"].any():  # one pair at a time: only the shared prompt cut differs
            assert [i[f"{key}_n"] for i in out["items"]] == counts.tolist()
            np.testing.assert_allclose([i[f"{key}_lp"] for i in out["items"]], sums, rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose([i[f"{key}_lp"] for i in out["items"]], ref["items"][f"{key}_lp"], rtol=1e-5)
        assert [i[f"{key}_n"] for i in out["items"]] == ref["items"][f"{key}_n"].tolist()
    for flag in ("prompt_truncated", "chosen_truncated", "rejected_truncated"):
        assert [i[flag] for i in out["items"]] == ref["items"][flag].tolist()
    assert [i["item"] for i in out["items"]] == [r["id"] for r in rows]
    return ref


def test_task_functions_tie_rule_and_corpus_ratio():
    doc = {"chosen": "abcd", "rejected": "ab", "n_tokens": [4, 2]}
    assert task_utils.expert_pref_results(doc, [(-4.0, False), (-2.0, False)]) == {
        "expert_pref_acc": 0.5,
        "acc": 0.0,
        "acc_norm": 0.5,
    }
    assert task_utils.expert_pref_results(doc, [(-4.0, False), (-3.0, False)])["expert_pref_acc"] == 1.0
    items = [
        task_utils.ref_nll_results({"n_tokens": [n, 1]}, [(ll, False)])["ref_nll"] for ll, n in [(-1, 1), (-9, 3)]
    ]
    assert task_utils.token_nll(items) == 10 / 4  # total -logprob / total tokens, not the mean of 1 and 3
    assert task_utils.total([3, 4]) == 7 and math.isnan(task_utils.token_nll([]))


def test_task_templates_are_indexed_by_lm_eval():
    from lm_eval.tasks import TaskManager

    from mdaq.evaluation.harness import TASK_DIR, TASKS

    manager = TaskManager(include_path=str(TASK_DIR), include_defaults=False)
    assert set(TASKS) <= set(manager.all_subtasks)


def test_bad_heldout_files_raise_data_error_before_loading_a_model(tmp_path):
    from mdaq.evaluation.harness import read_heldout, run_judge_free

    no_model = tmp_path / "no-model"  # a DataError must come first, not MissingAssetError
    bad = [dict(ROWS[0]), {k: v for k, v in ROWS[1].items() if k != "rejected"}]
    with pytest.raises(DataError, match=r"bad\.jsonl, record 1 \(id de-2\), field 'rejected': missing") as e:
        run_judge_free(no_model, None, _write(tmp_path / "bad.jsonl", bad))
    assert e.value.field == "rejected" and e.value.record == "1 (id de-2)"
    with pytest.raises(DataError, match=r"record 0, field 'input': non-string"):
        read_heldout(
            _write(tmp_path / "input.jsonl", [{"instruction": "a", "input": 3, "chosen": "b", "rejected": "c"}])
        )
    with pytest.raises(DataError, match="field 'chosen': empty response"):
        read_heldout(_write(tmp_path / "empty.jsonl", [{**ROWS[0], "chosen": ""}]))
    with pytest.raises(DataError, match="no held-out rows"):
        read_heldout(_write(tmp_path / "none.jsonl", []))
    with pytest.raises(DataError, match="not found"):
        read_heldout(tmp_path / "missing.jsonl")
    (tmp_path / "json.jsonl").write_text('{"instruction": "a"\n', encoding="utf-8")
    with pytest.raises(DataError, match="line 1.*malformed JSON"):
        read_heldout(tmp_path / "json.jsonl")


def test_run_judge_free_equals_evaluate_heldout(tiny_lm, heldout):
    from mdaq.evaluation.harness import run_judge_free

    out = run_judge_free(tiny_lm, None, heldout, batch_size=4, items=True)
    _assert_matches_evaluate(out, tiny_lm, None)
    assert out["lm_eval_version"] == "0.4.13" and out["tokenization"] == "mdaq"
    assert set(out["tasks"]) == {"mdaq_expert_pref", "mdaq_ref_nll"}
    assert out["tasks"]["mdaq_ref_nll"]["results"]["ref_tokens,none"] == out["n_ref_tokens"]
    json.dumps(out)  # storable as is

    # first `limit` pairs; pairs longer than max_seq_len are cut exactly as mdaq.models.lm.encode_responses cuts
    # them: one prompt cut shared by both responses of a pair, also when lm-eval encodes them one at a time
    short = run_judge_free(tiny_lm, None, heldout, batch_size=2, limit=5, max_seq_len=16, items=True)
    _assert_matches_evaluate(
        short, tiny_lm, None, ROWS[:5], EvaluateConfig(batch_size=2, max_seq_len=16, device="cpu")
    )
    assert any(i["prompt_truncated"] for i in short["items"])  # the shared cut was exercised


def test_run_judge_free_with_lora_adapter_equals_evaluate_heldout(tiny_lm, heldout, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from mdaq.evaluation.harness import run_judge_free

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(tiny_lm, dtype=torch.float32)
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(base, lora).save_pretrained(tmp_path / "adapter")  # random B: the adapter changes the outputs

    out = run_judge_free(tiny_lm, tmp_path / "adapter", heldout, batch_size=4, items=True)
    ref = _assert_matches_evaluate(out, tiny_lm, tmp_path / "adapter")
    assert ref["ref_nll"] != pytest.approx(evaluate_heldout(tiny_lm, None, ROWS, CFG)["ref_nll"], rel=1e-3)


def test_stock_lm_eval_tokenization_scores_the_newline_and_no_eos(tiny_lm, heldout):
    """With lm-eval's own encoding the prompt's trailing newline is scored (module docstring)."""
    from mdaq.evaluation.harness import run_judge_free

    out = run_judge_free(tiny_lm, None, heldout, batch_size=4, tokenization="lm_eval", items=True)
    tok, _ = load_causal_lm(tiny_lm)
    for row, item in zip(ROWS, out["items"], strict=True):
        prompt = format_prompt(row["instruction"], row.get("input", ""))
        for key in ("chosen", "rejected"):
            # scored = tail of the joint encoding after the prompt without its trailing newline; no EOS
            joint, context = tok(prompt + row[key])["input_ids"], tok(prompt.rstrip())["input_ids"]
            assert joint[: len(context)] == context and item[f"{key}_n"] == len(joint) - len(context)
    assert out["n"] == len(ROWS) and math.isfinite(out["ref_nll"])
    assert out["ref_nll"] != pytest.approx(evaluate_heldout(tiny_lm, None, ROWS, CFG)["ref_nll"], rel=1e-4)
