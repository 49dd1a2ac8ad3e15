"""The command line: `data validate` exit codes and messages, `ls`, `leaderboard`."""

from __future__ import annotations

import json

from mdaq.cli import main

from .conftest import REPO


def test_data_validate_ok_and_bad(tmp_path, capsys):
    assert (
        main(["data", "validate", str(REPO / "tests" / "fixtures" / "loaders" / "alpaca_ja.jsonl"), "--lang", "ja"])
        == 0
    )
    assert json.loads(capsys.readouterr().out)["n_records"] > 0
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "a", "output": "b"}\n{"instruction": "", "output": "c"}\n', encoding="utf-8")
    assert main(["data", "validate", str(bad), "--lang", "de"]) == 1
    err = capsys.readouterr().err
    assert "bad.jsonl" in err and "record 1" in err and "instruction" in err


def test_ls_lists_selectors(capsys):
    assert main(["ls"]) == 0
    out = capsys.readouterr().out
    assert "random" in out and "full" in out


def test_leaderboard_prints_table(tmp_path, capsys):
    csv = tmp_path / "lb.csv"
    csv.write_text(
        "method,lang,expert_pref_acc,expert_pref_acc_se,ref_nll,n,status\nfull,all,0.61,0.02,1.5,300,partial\n"
    )
    assert main(["leaderboard", "--path", str(csv)]) == 0
    assert "0.610" in capsys.readouterr().out
    long = tmp_path / "long.csv"  # the long format of results/leaderboard.csv
    long.write_text(
        "method,language,metric,value,status\nfull,all,expert_pref_acc,0.61,partial\n"
        "full,all,ref_nll,1.5,partial\nrandom,all,expert_pref_acc,0.55,partial\nrandom,all,ref_nll,1.7,partial\n"
    )
    assert main(["leaderboard", "--path", str(long)]) == 0
    out = capsys.readouterr().out
    assert "expert_pref_acc" in out and "0.550" in out and "1.700" in out


def test_missing_file_is_a_one_line_error(tmp_path, capsys):
    assert main(["leaderboard", "--path", str(tmp_path / "nope.csv")]) == 1
    assert "nope.csv" in capsys.readouterr().err
