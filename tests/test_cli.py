"""The command line: `data validate` exit codes and messages, `ls`, `leaderboard`."""

from __future__ import annotations

import json

import pytest

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


@pytest.mark.parametrize(
    ("exc", "code", "line"),
    [
        (RecursionError("maximum recursion depth exceeded"), 1, "error: unexpected RecursionError: maximum recursion"),
        (KeyError("unknown selector 'x'"), 1, "error: unknown selector 'x'"),
        (IsADirectoryError(21, "Is a directory", "some/folder"), 1, "error: [Errno 21] Is a directory: 'some/folder'"),
        (ValueError("two\nlines"), 1, "error: two lines"),
        (KeyboardInterrupt(), 130, "error: interrupted"),
    ],
)
def test_every_error_is_one_line(monkeypatch, capsys, exc, code, line):
    """Whatever a command raises, the user sees one line (an unexpected error says so and how to see more)."""

    def boom(args):
        raise exc

    monkeypatch.setattr("mdaq.cli._ls", boom)
    assert main(["ls"]) == code
    err = capsys.readouterr().err
    assert err.splitlines() == [line] or (err.startswith(line) and len(err.splitlines()) == 1), err


def test_verbose_shows_the_traceback_of_an_unexpected_error(monkeypatch, capsys):
    def boom(args):
        raise RuntimeError("a bug")

    monkeypatch.setattr("mdaq.cli._ls", boom)
    assert main(["-v", "ls"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and err.splitlines()[-1].startswith("error: unexpected RuntimeError: a bug")
