"""MIDB fetching (pins, mirror, checksums) and reading (aliases, alignment, bad input)."""

from __future__ import annotations

import hashlib
import json

import pytest

from mdaq import ChecksumError, DataError
from mdaq.cli import main
from mdaq.data.fetch import fetch, load_manifest, verify
from mdaq.data.midb import (
    SOURCE_GAPS,
    available_langs,
    detect_gap,
    load_alpaca_eval,
    load_mt_bench,
    load_pairs,
    midb_path,
)


def _manifest(files: dict[str, bytes]) -> dict:
    return {
        "commit": "0" * 40,
        "url_template": "http://127.0.0.1:9/{commit}/{path}",
        "files": {k: hashlib.sha256(v).hexdigest() for k, v in files.items()},
    }


def _mirror(tmp_path, files: dict[str, bytes]):
    root = tmp_path / "mirror"
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def test_fetch_from_mirror_verifies_and_keeps(tmp_path):
    files = {"a/x.json": b"[1]", "b.json": b"[]"}
    mirror, manifest = _mirror(tmp_path, files), _manifest(files)
    out = tmp_path / "out"
    assert set(fetch(out, mirror=mirror, manifest=manifest).values()) == {"mirror"}
    assert set(fetch(out, mirror=mirror, manifest=manifest).values()) == {"kept"}
    verify(out, manifest)


def test_fetch_checksum_mismatch_names_file_and_writes_nothing(tmp_path):
    files = {"a/x.json": b"[1]"}
    manifest = _manifest(files)
    mirror = _mirror(tmp_path, {"a/x.json": b"[2]"})
    with pytest.raises(ChecksumError, match=r"x\.json.*sha256 mismatch"):
        fetch(tmp_path / "out", mirror=mirror, manifest=manifest)
    assert not (tmp_path / "out" / "a" / "x.json").exists()
    assert list((tmp_path / "out" / "a").iterdir()) == []  # no temp file left behind


def test_verify_detects_tampering(tmp_path):
    files = {"x.json": b"[1]"}
    out = tmp_path / "out"
    fetch(out, mirror=_mirror(tmp_path, files), manifest=_manifest(files))
    (out / "x.json").write_bytes(b"[9]")
    with pytest.raises(ChecksumError, match="x.json"):
        verify(out, _manifest(files))


def test_fetch_missing_mirror_file_and_offline_download_are_clear(tmp_path):
    manifest = _manifest({"x.json": b"[1]"})
    with pytest.raises(DataError, match="missing from mirror"):
        fetch(tmp_path / "o", mirror=tmp_path, manifest=manifest)
    with pytest.raises(DataError, match="MDAQ_DATA_MIRROR"):
        fetch(tmp_path / "o", mirror=None, manifest=manifest, timeout_s=2)


def test_pinned_manifest_matches_the_mirror(midb_mirror):
    manifest = load_manifest()
    assert manifest["commit"] == "974170071c1ac6d96de668b97d7753ac5883f710"
    assert len(manifest["files"]) == 43
    verify(midb_mirror, manifest)


def test_cli_fetch_and_verify(tmp_path, midb_mirror, capsys):
    assert main(["data", "fetch", "--out", str(tmp_path / "m"), "--mirror", str(midb_mirror)]) == 0
    assert json.loads(capsys.readouterr().out)["files"] == 43
    assert main(["data", "verify", str(tmp_path / "m")]) == 0
    (tmp_path / "m" / "mt_bench" / "French.json").write_text("[]")
    assert main(["data", "verify", str(tmp_path / "m")]) == 1
    assert "French.json" in capsys.readouterr().err


def test_load_pairs_aliases_and_gap(synthetic_midb, tmp_path):
    de = load_pairs(midb_path(synthetic_midb, "MIDB_train", "de"), "de", gaps=(191,))
    assert [p.source_index for p in de[190:193]] == [190, 192, 193]
    assert "number 1192" in de[191].raw_response
    rec = {
        "Istruzione Grezza": "a",
        "Input Grezzo": "",
        "Risposta Grezza": "b",
        "Istruzione Rivisitata": "a",
        "Input Rivisitato": "",
        "Risposta Rivisitata": "c",
        "Distanza": "12",
    }
    path = tmp_path / "Italian.json"
    path.write_text(json.dumps([rec]), encoding="utf-8")
    (pair,) = load_pairs(path, "it")
    assert (pair.raw_response, pair.revised_response, pair.distance) == ("b", "c", 12)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("[{", r"bad\.json: malformed JSON"),
        ('{"a": 1}', "expected a JSON list"),
        ("[1]", r"record 0: expected an object"),
        ('[{"Raw Instruction": "x"}]', r"record 0, field 'Raw Input': missing field"),
        (json.dumps([{k: 5 for k in ("Raw Instruction",)}]), r"record 0, field 'Raw Instruction': expected a string"),
    ],
)
def test_load_pairs_bad_input(tmp_path, content, match):
    path = tmp_path / "bad.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=match):
        load_pairs(path, "fr")


def test_unknown_language_code_lists_known(tmp_path):
    with pytest.raises(DataError, match="unknown MIDB language code 'xx'.*ar, cs, de"):
        midb_path(tmp_path, "MIDB_train", "xx")


def test_eval_set_loaders(tmp_path):
    path = tmp_path / "a.json"
    path.write_text(json.dumps([{"instruction": "a"}, {"Instruction": "b"}, {"инструкция": "c"}]), encoding="utf-8")
    assert load_alpaca_eval(path) == ["a", "b", "c"]
    path.write_text(json.dumps([{"instruction": ""}]), encoding="utf-8")
    with pytest.raises(DataError, match="record 0"):
        load_alpaca_eval(path)
    path.write_text(json.dumps([{"question_id": 81, "turns": ["q1", ""]}]), encoding="utf-8")
    with pytest.raises(DataError, match="record 0, field 'turns'"):
        load_mt_bench(path)
    path.write_text(json.dumps([{"question_id": 1, "turns": ["a"]}, {"question_id": 2, "turns": ["a", "b", "c"]}]))
    questions, counts = load_mt_bench(path)
    assert [q["question_id"] for q in questions] == [1]
    assert counts == {"kept:first_turn_only": 1, "dropped:more_than_two_turns": 1}


def test_real_eval_sets_load(midb_mirror):
    for lang in available_langs(midb_mirror, "alpaca_eval"):
        assert len(load_alpaca_eval(midb_path(midb_mirror, "alpaca_eval", lang))) >= 800
        questions, counts = load_mt_bench(midb_path(midb_mirror, "mt_bench", lang))
        assert len(questions) >= 76 and counts["ok"] >= 74


def test_real_gaps_are_where_the_table_says(midb_mirror):
    """Re-derive SOURCE_GAPS from the data: shared numbers/Latin words against French at shift 0 vs 1."""
    fr = load_pairs(midb_path(midb_mirror, "MIDB_train", "fr"), "fr")
    for lang, gaps in SOURCE_GAPS.items():
        raw = load_pairs(midb_path(midb_mirror, "MIDB_train", lang), lang, gaps=())
        assert abs(detect_gap(raw, fr) - gaps[0]) <= 1  # the item at the boundary may share no tokens
    for lang in ("ja", "it", "ar"):
        assert detect_gap(load_pairs(midb_path(midb_mirror, "MIDB_train", lang), lang, gaps=()), fr) is None
