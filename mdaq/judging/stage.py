"""The judge stage: every method's answers against the reference method's (``judge.reference``, the paper's vanilla
``full`` model), per language, on translated AlpacaEval (through the ``alpaca_eval`` package) and MT-Bench rounds 1
and 2 (through :func:`mdaq.judging.judge_both_orders`), each comparison in both answer orders.

Without a judge (``judge.backend: none``, the offline profiles) the stage writes a ``skipped`` status with the
reason, and the leaderboard keeps its judge-free metrics. Every completion goes through a persistent cache, so an
interrupted run loses nothing and a rerun with unchanged answers costs nothing.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from mdaq.config import JudgeConfig
from mdaq.io import iter_jsonl, read_json, write_json, write_jsonl
from mdaq.judging.base import BENCHMARKS
from mdaq.names import path_under

log = logging.getLogger(__name__)

SKIP_MESSAGE = (
    "no judge configured (judge.backend: none): win rates are not computed and the leaderboard shows the "
    "judge-free metrics only. Set judge.backend/model/base_url in params.yaml (any OpenAI-compatible server: "
    "OpenAI, vLLM, llama.cpp, Ollama) and the key's environment variable name in judge.api_key_env."
)


def make_stage_judge(cfg: JudgeConfig, cache_path: str | Path | None) -> Any:
    """The configured judge with its persistent cache (``reference`` and ``lang_policy`` are stage settings)."""
    from mdaq.judging import make_judge

    fields = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("reference", "lang_policy")}
    if cfg.backend != "openai_compat":
        fields = {k: v for k, v in fields.items() if k in ("backend", "prompt")}
    return make_judge({**fields, "cache_path": str(cache_path) if cache_path else None})


def _mt_bench_items(
    questions: dict[int, list[str]],
    model_rows: list[dict],
    ref_rows: list[dict],
    method: str,
    reference: str,
    lang: str,
) -> list[Any]:
    """Round-1 and round-2 judge items; round 2 shows each assistant's whole dialogue."""
    from mdaq.judging import JudgeItem

    ref_by = {r["question_id"]: r for r in ref_rows}
    items = []
    for m in model_rows:
        qid = m["question_id"]
        if qid not in ref_by or qid not in questions:
            continue
        turns, m_ans, r_ans = questions[qid], m["choices"][0]["turns"], ref_by[qid]["choices"][0]["turns"]
        m_lang, r_lang = m.get("detected_lang") or [None] * 2, ref_by[qid].get("detected_lang") or [None] * 2
        common = {"lang": lang, "model": method, "reference": reference}
        items.append(
            JudgeItem(
                item_id=str(qid),
                benchmark="mt_bench_r1",
                instruction=turns[0],
                model_answer=m_ans[0],
                reference_answer=r_ans[0],
                model_lang=m_lang[0],
                reference_lang=r_lang[0],
                **common,
            )
        )
        if len(turns) > 1 and len(m_ans) > 1 and len(r_ans) > 1:
            items.append(
                JudgeItem(
                    item_id=str(qid),
                    benchmark="mt_bench_r2",
                    instruction=turns[1],
                    model_answer=m_ans[1],
                    reference_answer=r_ans[1],
                    history=((turns[0], m_ans[0], r_ans[0]),),
                    model_lang=m_lang[1],
                    reference_lang=r_lang[1],
                    **common,
                )
            )
    return items


def judge_pair(
    judge: Any,
    method: str,
    lang: str,
    generations_dir: Path,
    questions: dict[int, list[str]],
    cfg: JudgeConfig,
    out_dir: Path,
    seed: int = 0,
) -> dict[str, Any]:
    """Judge ``method`` against ``cfg.reference`` in ``lang``; writes ``judgments.jsonl`` (both orders, all
    benchmarks), alpaca_eval's ``annotations.json`` and ``judge.json`` (win rates and diagnostics) to ``out_dir``.
    The answers are read from ``generations_dir/<method>/<lang>/s<seed>/`` (the run folders of the ``run`` stage)."""
    from mdaq.judging.alpaca_bridge import run_alpaca_eval
    from mdaq.judging.winrate import combine_orders, json_safe, judge_diagnostics, win_rate_stats

    m_dir, r_dir = (path_under(generations_dir, m, lang, f"s{seed}") for m in (method, cfg.reference))
    model_rows, ref_rows = read_json(m_dir / "alpaca_eval.json"), read_json(r_dir / "alpaca_eval.json")
    res = run_alpaca_eval(
        model_rows, ref_rows, judge, lang=lang, out_dir=out_dir, name=method, reference=cfg.reference
    )
    records = list(res["records"])  # the same prompt, parser and record format as the MT-Bench items below
    items = _mt_bench_items(
        questions,
        list(iter_jsonl(m_dir / "mt_bench.jsonl")),
        list(iter_jsonl(r_dir / "mt_bench.jsonl")),
        method,
        cfg.reference,
        lang,
    )
    records += judge.compare(items)
    write_jsonl(out_dir / "judgments.jsonl", records)
    combined = combine_orders(records, lang_policy=cfg.lang_policy)
    summary: dict[str, Any] = {
        "status": "ok",
        "method": method,
        "lang": lang,
        "reference": cfg.reference,
        "judge_id": judge.id,
        "prompt_version": judge.prompt_version,
        "prompt_sha": judge.prompt_sha,
        "lang_policy": cfg.lang_policy,
        "test_double": bool(getattr(judge, "is_test_double", False)),
    }
    for bench in BENCHMARKS:
        prefs = [it["preference"] for it in combined if it["benchmark"] == bench]
        summary[bench] = win_rate_stats(prefs) if prefs else None
    summary["alpaca_eval_package"] = res["leaderboard"]  # alpaca_eval's own numbers (main order only), a cross-check
    summary["diagnostics"] = judge_diagnostics(records)["overall"]
    write_json(out_dir / "judge.json", json_safe(summary))
    return summary


def run_judge_stage(
    generations_dir: str | Path,
    midb_dir: str | Path,
    methods: list[str],
    languages: list[str],
    cfg: JudgeConfig,
    out_dir: str | Path,
    cache_path: str | Path | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Judge every method but the reference against it in every language; returns ``{method: {lang: summary}}``.
    The answers judged are those of the training seed ``seed`` (the pipeline: the first of ``seeds``).

    With ``cfg.backend == "none"``, writes ``{"status": "skipped", "reason": ...}`` per pair and logs why.
    """
    from mdaq.data.midb import LANG_FILES, load_mt_bench

    out_dir = Path(out_dir)
    out: dict[str, Any] = {}
    from mdaq.judging import check_backend

    check_backend(cfg.backend, "params.yaml")
    judge = None if cfg.backend == "none" else make_stage_judge(cfg, cache_path)
    if judge is None:
        log.warning(SKIP_MESSAGE)
        print(f"judge stage skipped: {SKIP_MESSAGE}")
    for lang in languages:
        questions = {}
        if judge is not None:
            qs, _ = load_mt_bench(Path(midb_dir) / "mt_bench" / f"{LANG_FILES[lang]}.json")
            questions = {q["question_id"]: q["turns"] for q in qs}
        for method in methods:
            if method == cfg.reference:
                continue
            pair_dir = path_under(out_dir, method, lang)  # names from params: never a path outside out_dir
            if judge is None:
                summary = {"status": "skipped", "method": method, "lang": lang, "reason": SKIP_MESSAGE}
                write_json(pair_dir / "judge.json", summary)
            else:
                summary = judge_pair(judge, method, lang, Path(generations_dir), questions, cfg, pair_dir, seed)
            out.setdefault(method, {})[lang] = summary
    if judge is not None and hasattr(judge, "totals"):
        write_json(out_dir / "totals.json", {"judge_id": judge.id, **judge.totals()})
    return out


def winrate_table(results: dict[str, Any]) -> Any:
    """One row per (method, lang, benchmark) with win rate, SE, interval and counts, from :func:`run_judge_stage`."""
    import pandas as pd

    rows = []
    for method, by_lang in results.items():
        for lang, s in by_lang.items():
            for bench in BENCHMARKS:
                st = s.get(bench) if s.get("status") == "ok" else None
                if st:
                    rows.append(
                        {
                            "method": method,
                            "lang": lang,
                            "benchmark": bench,
                            **{
                                k: st.get(k)
                                for k in (
                                    "win_rate",
                                    "standard_error",
                                    "ci_low",
                                    "ci_high",
                                    "discrete_win_rate",
                                    "n_total",
                                    "n_unparsed",
                                )
                            },
                        }
                    )
    return pd.DataFrame(rows)
