"""`mdaq select` and `mdaq.selectors.runner`: per-language and pooled selection from a pool file, features in or
computed."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mdaq.cli import main
from mdaq.io import read_jsonl, write_samples
from mdaq.selectors.runner import select_samples


def _write_features(d, n, seed=0):
    rng = np.random.default_rng(seed)
    d.mkdir()
    q = rng.normal(size=n).astype(np.float32)
    np.save(d / "quality.npy", q)
    np.save(d / "embeddings.npy", rng.normal(size=(n, 6)).astype(np.float32))
    return q


def test_select_cli_per_language_quality_topk(tmp_path, toy_samples, capsys):
    write_samples(tmp_path / "pool.jsonl", toy_samples)
    q = _write_features(tmp_path / "feat", len(toy_samples))
    out = tmp_path / "sel.jsonl"
    argv = [
        "select",
        "--method",
        "quality_topk",
        "--pool",
        str(tmp_path / "pool.jsonl"),
        "--budget",
        "3",
        "--out",
        str(out),
        "--features",
        str(tmp_path / "feat"),
    ]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n_selected"] == 9 and summary["by_lang"] == {"de": 3, "ja": 3, "no": 3}
    rows = read_jsonl(out)
    for lang in ("de", "ja", "no"):
        mine = [r for r in rows if r["lang"] == lang]
        positions = [i for i, s in enumerate(toy_samples) if s.lang == lang]
        best = sorted(positions, key=lambda i: -q[i])[:3]
        assert [r["index"] for r in mine] == best  # indices are lines of the input file
        assert all(toy_samples[r["index"]].id == r["id"] for r in mine)
    assert [r["rank"] for r in rows] == list(range(9))


def test_select_cli_pooled_quotas(tmp_path, toy_samples, capsys):
    write_samples(tmp_path / "pool.jsonl", toy_samples)
    _write_features(tmp_path / "feat", len(toy_samples))
    out = tmp_path / "sel.jsonl"
    argv = [
        "select",
        "--method",
        "mdaq_das",
        "--pool",
        str(tmp_path / "pool.jsonl"),
        "--budget",
        "7",
        "--pooled",
        "--quota",
        "equal",
        "--out",
        str(out),
        "--features",
        str(tmp_path / "feat"),
    ]
    assert main(argv) == 0
    counts = json.loads(capsys.readouterr().out)["by_lang"]
    assert sum(counts.values()) == 7 and max(counts.values()) - min(counts.values()) <= 1


def test_select_cli_reads_alpaca_and_computes_embeddings(tmp_path, tiny_encoder, capsys):
    pool = tmp_path / "alpaca.json"
    recs = [{"instruction": f"Nenne Zahl {i}", "input": "", "output": f"{i} " * (i + 1)} for i in range(12)]
    pool.write_text(json.dumps(recs), encoding="utf-8")
    out = tmp_path / "sel.jsonl"
    argv = [
        "select",
        "--method",
        "kcenter",
        "--pool",
        str(pool),
        "--lang",
        "de",
        "--budget",
        "4",
        "--out",
        str(out),
        "--encoder",
        str(tiny_encoder),
    ]
    assert main(argv) == 0
    rows = read_jsonl(out)
    assert len(rows) == 4 and len({r["index"] for r in rows}) == 4 and {r["lang"] for r in rows} == {"de"}


def test_select_cli_missing_feature_says_how_to_get_it(tmp_path, toy_samples, capsys):
    write_samples(tmp_path / "pool.jsonl", toy_samples)
    argv = [
        "select",
        "--method",
        "deita",
        "--pool",
        str(tmp_path / "pool.jsonl"),
        "--budget",
        "2",
        "--out",
        str(tmp_path / "x.jsonl"),
    ]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "--qsm" in err and "--encoder" in err and not (tmp_path / "x.jsonl").exists()
    assert (
        main(
            [
                "select",
                "--method",
                "random",
                "--pool",
                str(tmp_path / "pool.jsonl"),
                "--budget",
                "2",
                "--out",
                str(tmp_path / "x.jsonl"),
                "--params",
                "{bad",
            ]
        )
        == 1
    )
    assert "--params" in capsys.readouterr().err


def test_select_samples_rejects_misaligned_features(toy_samples):
    with pytest.raises(ValueError, match="quality has 3 rows for 30 samples"):
        select_samples(toy_samples, "quality_topk", 2, features={"quality": np.zeros(3)})
