"""Names that become paths: the language table, safe names, and `path_under` wherever a path is joined from them."""

from __future__ import annotations

import pytest

from mdaq.config import JudgeConfig
from mdaq.errors import DataError
from mdaq.judging.stage import run_judge_stage
from mdaq.names import check_lang, check_name, check_relative, path_under

ESCAPES = ["../../x", "../x", "/abs/path", "de/../../x", "..", "", "a\0b", "C:\\windows", "\\\\server\\share"]


@pytest.mark.parametrize("code", ["de", "no", "ja", "zho_Hans", "und"])
def test_known_language_codes_pass(code):
    assert check_lang(code, "f") == code


@pytest.mark.parametrize("code", [*ESCAPES, "xx", "EN", "english", "de ", "de/fr", 1, None, False])
def test_unknown_or_path_like_language_codes_are_refused(code):
    with pytest.raises(DataError, match="lang") as e:
        check_lang(code, "profile.yaml", field="languages[0]")
    assert "profile.yaml" in str(e.value) and "languages[0]" in str(e.value)


@pytest.mark.parametrize("name", [*ESCAPES, ".hidden", "a b", "a/b", "a..b", 3, None])
def test_names_that_would_not_be_one_file_name_are_refused(name):
    with pytest.raises(DataError, match="methods\\[2\\]"):
        check_name(name, "p.yaml", field="methods[2]")


@pytest.mark.parametrize("name", ["mdaq_das", "gemma-3-270m", "llama-3-8b", "xlm-roberta-large", "judge_pairwise_v1"])
def test_names_in_use_pass(name):
    assert check_name(name, "p.yaml") == name


@pytest.mark.parametrize("parts", [("../x",), ("m", "../../x"), ("/etc",), ("m", ""), ("m", "a/../../b"), (None,)])
def test_path_under_refuses_every_escape(tmp_path, parts):
    with pytest.raises(DataError, match="cannot join") as e:
        path_under(tmp_path / "root", *parts)
    assert str(tmp_path / "root") in str(e.value)


def test_path_under_joins_names_and_nested_parts(tmp_path):
    assert (
        path_under(tmp_path, "random", "de", "s0", "metrics.json")
        == tmp_path / "random" / "de" / "s0" / "metrics.json"
    )
    assert path_under(tmp_path, "mt_bench/French.json") == tmp_path / "mt_bench" / "French.json"


def test_relative_paths_stay_in_the_repository():
    assert check_relative("configs/accelerate/8gpu.yaml", "p") == "configs/accelerate/8gpu.yaml"
    for bad in ("/etc/passwd", "../outside.yaml", "configs/../../x.yaml"):
        with pytest.raises(DataError, match="train.accelerate_config"):
            check_relative(bad, "p", field="train.accelerate_config")


@pytest.mark.parametrize(("methods", "languages"), [(["m"], ["../../escape"]), (["../../escape"], ["de"])])
def test_judge_stage_never_writes_outside_its_folder(tmp_path, methods, languages, capsys):
    """The finding: a language `../../../../X` made the judge stage write outside the results folder."""
    out = tmp_path / "a" / "b" / "judge"
    with pytest.raises(DataError, match="cannot join"):
        run_judge_stage(tmp_path / "gen", tmp_path / "midb", methods, languages, JudgeConfig(), out)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == []
