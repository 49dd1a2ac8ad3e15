"""Loaders for external instruction data: formats, stable ids, strict errors, explicit cleaning, HF datasets."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import pytest

from mdaq.data.loaders import (
    clean_samples,
    load_alpaca,
    load_any,
    load_hf_dataset,
    load_sharegpt,
    load_table,
    resolve_format,
    validate_file,
)
from mdaq.data.readers import check_lang, is_lang_code
from mdaq.errors import DataError
from mdaq.types import sample_id

# Only local files are read; `datasets` is imported lazily by the loader, so this still takes effect.
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

FIX = Path(__file__).parent / "fixtures" / "loaders"
CSV_COLUMNS = {"instruction": "prompt", "input": "context", "output": "completion"}


def _write(tmp_path: Path, name: str, content: object) -> Path:
    path = tmp_path / name
    text = content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)
    path.write_text(text, encoding="utf-8")
    return path


def _jsonl(rows: list) -> str:
    return "\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n"


def _parquet(tmp_path: Path, name: str, rows: list[dict]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / name
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def _assert_names(exc: pytest.ExceptionInfo, file: str, record: int | str | None, field: str | None) -> None:
    """The message alone must say which file, record and field is wrong."""
    msg = str(exc.value)
    assert file in msg, msg
    assert exc.value.record == record and exc.value.field == field, msg
    if record is not None:
        assert f"record {record}" in msg, msg
    if field is not None:
        assert repr(field) in msg, msg


def _ok(instruction: str = "Say hi.", output: str = "Hi.", **extra: object) -> dict:
    return {"instruction": instruction, "input": "", "output": output, **extra}


# --- each format loads -----------------------------------------------------------------------------------------


def test_alpaca_json():
    samples = load_alpaca(FIX / "alpaca_en.json", "en")
    assert [s.instruction[:9] for s in samples] == ["Give thre", "Translate", "What is t"]
    assert samples[1].input == "Good morning." and samples[2].input == ""  # missing input -> ""
    assert {s.lang for s in samples} == {"en"}
    assert samples[0].source == "alpaca_en.json#0"
    assert samples[0].id == sample_id("en", samples[0].instruction, "", samples[0].output)


def test_alpaca_jsonl_skips_blank_lines_and_keeps_extra_keys_in_meta():
    samples = load_alpaca(FIX / "alpaca_ja.jsonl", "ja", source="ja-demo")
    assert len(samples) == 3 and samples[0].output == "東京です。"
    assert samples[2].meta == {"category": "advice"} and samples[2].source == "ja-demo#2"


def test_sharegpt_first_turn_by_default():
    samples = load_sharegpt(FIX / "sharegpt_ru.json", "ru")
    assert [(s.instruction, s.output) for s in samples] == [
        ("Привет! Как дела?", "Хорошо, спасибо! Чем могу помочь?"),
        ("Сколько будет 2+2?", "4."),
    ]
    assert samples[0].meta == {"id": "c0"}
    assert samples[1].meta == {"id": "c1", "system": "Отвечай кратко."}


def test_sharegpt_all_turns():
    samples = load_sharegpt(FIX / "sharegpt_ru.json", "ru", all_turns=True)
    assert [s.output for s in samples] == ["Хорошо, спасибо! Чем могу помочь?", "Колобок повесился.", "4."]
    assert [s.meta["turn"] for s in samples] == [0, 1, 0]
    assert [s.source for s in samples] == ["sharegpt_ru.json#0.0", "sharegpt_ru.json#0.1", "sharegpt_ru.json#1.0"]


def test_table_csv_with_mapping_and_lang_column():
    samples = load_table(FIX / "mixed.csv", columns=CSV_COLUMNS, lang_column="language")
    assert [s.lang for s in samples] == ["no", "no", "en", "zho_Hans", "hi"]
    assert samples[1].input == "God morgen." and samples[0].input == ""
    assert samples[4].output == "हाँ, ज़रूर।"
    assert all(s.meta == {} for s in samples)  # language is consumed, not copied to meta


def test_table_parquet_gives_same_ids_as_csv(tmp_path):
    from_csv = load_table(FIX / "mixed.csv", columns=CSV_COLUMNS, lang_column="language")
    rows = [
        {"prompt": s.instruction, "context": s.input, "completion": s.output, "language": s.lang} for s in from_csv
    ]
    path = _parquet(tmp_path, "mixed.parquet", rows[::-1])
    from_pq = load_table(path, columns=CSV_COLUMNS, lang_column="language")
    assert [s.id for s in from_pq] == [s.id for s in from_csv][::-1]


def test_table_input_column_is_optional_and_file_wide_lang(tmp_path):
    path = _parquet(tmp_path, "t.parquet", [{"prompt": "Hei", "completion": "Hei hei"}])
    (sample,) = load_table(path, "no", columns={"instruction": "prompt", "output": "completion"})
    assert (sample.lang, sample.input, sample.output) == ("no", "", "Hei hei")


@pytest.mark.parametrize(
    ("name", "kw", "n", "fmt"),
    [
        ("alpaca_en.json", {"lang": "en"}, 3, "json"),
        ("alpaca_ja.jsonl", {"lang": "ja"}, 3, "json"),
        ("sharegpt_ru.json", {"lang": "ru"}, 2, "json"),
        ("sharegpt_ru.json", {"lang": "ru", "all_turns": True}, 3, "json"),
        ("mixed.csv", {"columns": CSV_COLUMNS, "lang_column": "language"}, 5, "table"),
    ],
)
def test_load_any_dispatches_by_extension(name, kw, n, fmt):
    assert resolve_format(FIX / name) == fmt
    assert len(load_any(FIX / name, **kw)) == n


def test_load_any_jsonl_with_per_record_language(tmp_path):
    path = _write(tmp_path, "multi.jsonl", _jsonl([_ok(lang="no"), _ok(lang="zho_Hans"), _ok(lang="ar")]))
    samples = load_any(path, lang_column="lang")
    assert [s.lang for s in samples] == ["no", "zho_Hans", "ar"] and len({s.id for s in samples}) == 3
    with pytest.raises(DataError, match="no language given"):
        load_any(FIX / "sharegpt_ru.json", lang_column="lang")


def test_load_any_explicit_format_and_errors(tmp_path):
    assert [s.output for s in load_any(FIX / "sharegpt_ru.json", "ru", fmt="sharegpt")][1] == "4."
    with pytest.raises(DataError, match="unknown format 'yaml'"):
        load_any(FIX / "alpaca_en.json", "en", fmt="yaml")
    with pytest.raises(DataError, match="cannot infer the format.*'.txt'"):
        load_any(_write(tmp_path, "data.txt", "x"), "en")


# --- stable ids ---------------------------------------------------------------------------------------------------


def test_ids_stable_across_reorderings(tmp_path):
    records = json.loads((FIX / "alpaca_en.json").read_text(encoding="utf-8"))
    original = load_alpaca(FIX / "alpaca_en.json", "en")
    shuffled = load_alpaca(_write(tmp_path, "shuffled.jsonl", _jsonl([records[2], records[0], records[1]])), "en")
    assert [s.id for s in shuffled] == [original[2].id, original[0].id, original[1].id]
    assert len({s.id for s in original}) == 3
    assert load_alpaca(FIX / "alpaca_en.json", "fr")[0].id != original[0].id  # the language is part of the content


# --- bad input: every error names file, record and field --------------------------------------------------------


def test_malformed_json_names_line_and_column(tmp_path):
    path = _write(
        tmp_path, "broken.json", '[\n  {"instruction": "a", "output": "b"},\n  {"instruction": "c" "output"}\n]'
    )
    with pytest.raises(DataError, match=r"line 3, column 23: Expecting ',' delimiter") as exc:
        load_alpaca(path, "en")
    _assert_names(exc, "broken.json", None, None)


def test_jsonl_named_json_gets_a_hint(tmp_path):
    with pytest.raises(DataError, match=r"line 2, column 1: Extra data.*\.jsonl"):
        load_alpaca(_write(tmp_path, "lines.json", _jsonl([_ok(), _ok("b")])), "en")


def test_malformed_jsonl_names_the_line(tmp_path):
    path = _write(tmp_path, "broken.jsonl", _jsonl([_ok()]) + "\n" + '{"instruction": "x", "output": }\n')
    with pytest.raises(DataError, match=r"line 3, column 32") as exc:
        load_alpaca(path, "en")
    _assert_names(exc, "broken.jsonl", 1, None)


@pytest.mark.parametrize(
    ("rows", "record", "field", "match"),
    [
        ([_ok(), "not a dict"], 1, None, "record is a str, expected an object"),
        ([_ok(), {"instruction": "no output"}], 1, "output", "missing required field"),
        ([_ok(), _ok(output="")], 1, "output", "is empty"),
        ([_ok(instruction=" \n\t"), _ok()], 0, "instruction", "whitespace-only"),
        ([_ok(), _ok(), _ok(output=42)], 2, "output", "expected a string, got int"),
        ([_ok(), {"instruction": "x", "input": ["list"], "output": "y"}], 1, "input", "expected a string, got list"),
        ([_ok(), {"instruction": None, "output": "y"}], 1, "instruction", "missing or null"),
        ([_ok("a"), _ok("b"), _ok("a")], 2, "id", "records 0 and 2"),
    ],
)
def test_alpaca_bad_records(tmp_path, rows, record, field, match):
    for name in ("bad.json", "bad.jsonl"):
        path = _write(tmp_path, name, rows if name.endswith(".json") else _jsonl(rows))
        with pytest.raises(DataError, match=match) as exc:
            load_alpaca(path, "en")
        _assert_names(exc, name, record, field)


def test_top_level_json_must_be_a_list(tmp_path):
    with pytest.raises(DataError, match="expected a JSON list of records, got a dict"):
        load_alpaca(_write(tmp_path, "obj.json", {"data": [_ok()]}), "en")


def test_missing_file_and_bad_utf8(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        load_alpaca(tmp_path / "nope.json", "en")
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(b'{"instruction": "caf\xe9", "output": "x"}\n')
    with pytest.raises(DataError, match="not valid UTF-8"):
        load_alpaca(path, "en")


def test_unknown_language_code(tmp_path):
    with pytest.raises(DataError, match="unknown language code 'english'") as exc:
        load_alpaca(FIX / "alpaca_en.json", "english")
    _assert_names(exc, "alpaca_en.json", None, "lang")
    csv = _write(tmp_path, "langs.csv", "prompt,completion,language\nHei,Hei,no\nHi,Hi,EN\n")
    with pytest.raises(DataError, match="unknown language code 'EN'") as exc:
        load_table(csv, columns=CSV_COLUMNS | {"input": "prompt"}, lang_column="language")
    _assert_names(exc, "langs.csv", 1, "language")


def test_yaml_no_becomes_false_and_gets_a_quoting_hint(tmp_path):
    import yaml

    cfg = yaml.safe_load("lang: no\n")
    assert cfg["lang"] is False  # the trap this guards against
    with pytest.raises(DataError, match=r'lang False is not a string; quote language codes in YAML \("no"\)') as exc:
        load_alpaca(FIX / "alpaca_en.json", cfg["lang"])
    _assert_names(exc, "alpaca_en.json", None, "lang")
    path = _parquet(tmp_path, "bool_lang.parquet", [_ok(lang=False), _ok("b", lang=True)])
    with pytest.raises(DataError, match="quote language codes") as exc:
        load_table(path, lang_column="lang")
    _assert_names(exc, "bool_lang.parquet", 0, "lang")
    path = _write(tmp_path, "rows.jsonl", _jsonl([_ok(lang="nb"), _ok("b", lang=False)]))
    with pytest.raises(DataError, match="lang False is not a string; quote") as exc:
        load_hf_dataset(path, lang_column="lang", cache_dir=str(tmp_path / "hf"))
    _assert_names(exc, "rows.jsonl[train]", 1, "lang")
    assert load_alpaca(FIX / "alpaca_en.json", yaml.safe_load('lang: "no"\n')["lang"])[0].lang == "no"


def test_language_code_table():
    assert all(is_lang_code(c) for c in ["no", "nb", "zh", "hi", "ar", "zho_Hans", "nob_Latn", "und"])
    assert not any(is_lang_code(c) for c in ["NO", "english", "zh-CN", "zho_hans", "xx", "", None, False, 1])
    assert check_lang("zho_Hans", "f") == "zho_Hans"


def test_table_missing_mapped_column_names_file_and_column(tmp_path):
    with pytest.raises(DataError, match="column 'answer'.*not found") as exc:
        load_table(FIX / "mixed.csv", columns={"instruction": "prompt", "output": "answer"}, lang_column="language")
    _assert_names(exc, "mixed.csv", None, "answer")
    with pytest.raises(DataError, match="column 'lng'") as exc:
        load_table(FIX / "mixed.csv", columns=CSV_COLUMNS, lang_column="lng")
    _assert_names(exc, "mixed.csv", None, "lng")
    with pytest.raises(DataError, match="unknown mdaq field 'answer'"):
        load_table(FIX / "mixed.csv", "en", columns={"answer": "completion"})


def test_table_bad_rows_name_the_file_column(tmp_path):
    csv = _write(tmp_path, "rows.csv", "prompt,completion\nA,B\nC,\n")
    with pytest.raises(DataError, match="is empty") as exc:
        load_table(csv, "en", columns={"instruction": "prompt", "output": "completion"})
    _assert_names(exc, "rows.csv", 1, "completion")
    pq_path = _parquet(tmp_path, "rows.parquet", [_ok(), {"instruction": "x", "input": None, "output": None}])
    with pytest.raises(DataError, match="missing or null") as exc:
        load_table(pq_path, "en")
    _assert_names(exc, "rows.parquet", 1, "output")


def test_table_language_arguments(tmp_path):
    with pytest.raises(DataError, match="no language given"):
        load_table(FIX / "mixed.csv", columns=CSV_COLUMNS)
    with pytest.raises(DataError, match="not both"):
        load_table(FIX / "mixed.csv", "en", columns=CSV_COLUMNS, lang_column="language")
    with pytest.raises(DataError, match="malformed CSV"):
        load_table(_write(tmp_path, "ragged.csv", "instruction,output\na,b\nc,d,e,f\n"), "en")
    with pytest.raises(DataError, match="repeated column") as exc:
        load_table(_write(tmp_path, "twice.csv", "instruction,output,output\na,b,c\n"), "en")
    _assert_names(exc, "twice.csv", None, "output")


def _conv(*turns: str, key: str = "conversations") -> dict:
    """``_conv("human:Hi", "gpt:Hello")`` -> a ShareGPT record (``key="messages"`` uses role/content)."""
    role, text = ("from", "value") if key == "conversations" else ("role", "content")
    return {key: [{role: t.split(":", 1)[0], text: t.split(":", 1)[1]} for t in turns]}


@pytest.mark.parametrize(
    ("conv", "all_turns", "field", "match"),
    [
        (_conv("human:Hi"), False, "conversations", "no assistant reply"),
        (_conv("system:s", "user:q", key="messages"), False, "messages", "no assistant reply"),
        (_conv("bot:Hi"), False, "conversations[0].from", "unknown speaker 'bot'"),
        (_conv("gpt:a", "human:q"), False, "conversations[0]", "expected a user turn"),
        (_conv("human:q", "gpt: "), False, "conversations[1].value", "whitespace-only"),
        (_conv("human:q", "gpt:a", "human:q2"), True, "conversations[2]", "expected a user turn"),
        (_conv("human:q", "gpt:a", "human:q2", "human:q3"), True, "conversations[2]", "expected a user turn"),
        ({"conversations": "text"}, False, "conversations", "expected a list of turns"),
        ({"conversations": ["text"]}, False, "conversations[0]", "turn is a str"),
        ({"dialogue": []}, False, "conversations", "missing required field"),
    ],
)
def test_sharegpt_bad_conversations(tmp_path, conv, all_turns, field, match):
    path = _write(tmp_path, "chat.json", [_conv("human:Hello", "gpt:Hi!"), conv])
    with pytest.raises(DataError, match=match) as exc:
        load_sharegpt(path, "en", all_turns=all_turns)
    _assert_names(exc, "chat.json", 1, field)


def test_sharegpt_trailing_user_turn_is_ignored_in_first_turn_mode(tmp_path):
    conv = _conv("human:q", "gpt:a", "human:?")
    assert len(load_sharegpt(_write(tmp_path, "chat.json", [conv]), "en")) == 1


def test_sharegpt_duplicate_ids_name_both_records(tmp_path):
    conv = {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}
    with pytest.raises(DataError, match="records 0 and 2") as exc:
        load_sharegpt(
            _write(
                tmp_path,
                "dups.jsonl",
                _jsonl(
                    [
                        conv,
                        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "b"}]},
                        conv,
                    ]
                ),
            ),
            "en",
        )
    _assert_names(exc, "dups.jsonl", 2, "id")


# --- explicit cleaning --------------------------------------------------------------------------------------------


def test_clean_samples_counts_reasons(tmp_path):
    rows = [_ok("a"), _ok("b", output=""), _ok("a"), _ok("c"), _ok(" ", output="x"), _ok("a"), _ok("d", output=" ")]
    path = _write(tmp_path, "messy.jsonl", _jsonl(rows))
    with pytest.raises(DataError, match="is empty"):
        load_alpaca(path, "en")  # strict by default
    samples = load_alpaca(path, "en", strict=False)
    assert len(samples) == len(rows)  # nothing dropped while loading
    kept, removed = clean_samples(samples)
    assert [s.instruction for s in kept] == ["a", "c"]
    assert removed == Counter({"duplicate": 2, "empty_output": 2, "empty_instruction": 1})
    assert clean_samples(kept) == (kept, Counter())


def test_non_strict_still_rejects_structural_errors(tmp_path):
    with pytest.raises(DataError, match="expected a string"):
        load_alpaca(_write(tmp_path, "bad.json", [_ok(), _ok(output=3)]), "en", strict=False)


# --- validate_file (backs `mdaq data validate PATH`) ------------------------------------------------------------


def test_validate_file_summaries():
    summary = validate_file(FIX / "mixed.csv", columns=CSV_COLUMNS, lang_column="language")
    assert summary["format"] == "table" and summary["n_records"] == 5
    assert summary["languages"] == {"no": 2, "en": 1, "zho_Hans": 1, "hi": 1}
    assert summary["n_with_input"] == 1
    summary = validate_file(FIX / "alpaca_ja.jsonl")
    assert summary["languages"] == {"und": 3} and summary["fields"] == ["instruction", "input", "output", "category"]
    assert validate_file(FIX / "sharegpt_ru.json", lang="ru")["fields"] == [
        "instruction",
        "input",
        "output",
        "id",
        "system",
    ]
    json.dumps(summary)  # printable by the CLI


def test_validate_file_raises_data_error(tmp_path):
    with pytest.raises(DataError, match="records 0 and 1") as exc:
        validate_file(_write(tmp_path, "dup.json", [_ok(), _ok()]))
    _assert_names(exc, "dup.json", 1, "id")
    with pytest.raises(DataError, match="no records"):
        validate_file(_write(tmp_path, "empty.jsonl", "\n"))


# --- Hugging Face datasets on local files ---------------------------------------------------------------------


def test_hf_bactrian_x_json_matches_alpaca_loader(tmp_path):
    samples = load_hf_dataset(FIX / "bactrian_x_ar.json", "ar", cache_dir=str(tmp_path / "hf"))
    assert [s.id for s in samples] == [s.id for s in load_alpaca(FIX / "bactrian_x_ar.json", "ar")]
    assert samples[1].input == "صباح الخير" and samples[1].meta == {"id": "ar-1"}
    assert samples[0].source == "bactrian_x_ar.json#0"


def test_hf_aya_jsonl_with_mapping(tmp_path):
    names = {"French": "fr", "Norwegian Bokmal": "no", "Bengali": "bn"}
    aya = {"columns": {"instruction": "inputs", "output": "targets"}, "lang_column": "language"}
    samples = load_hf_dataset(FIX / "aya.jsonl", lang_map=names, cache_dir=str(tmp_path / "hf"), **aya)
    assert [s.lang for s in samples] == ["fr", "no", "bn"]
    assert samples[2].output == "নয়াদিল্লি।" and samples[1].meta["language_code"] == "nob"
    with pytest.raises(DataError, match="unknown language code 'French'") as exc:
        load_hf_dataset(FIX / "aya.jsonl", cache_dir=str(tmp_path / "hf"), **aya)  # no lang_map: names fail
    _assert_names(exc, "aya.jsonl[train]", 0, "language")


def test_hf_parquet_and_missing_column(tmp_path):
    rows = [
        {"prompt": "Hei", "completion": "Hallo", "lang": "no"},
        {"prompt": "你好", "completion": "你好！", "lang": "zh"},
    ]
    path = _parquet(tmp_path, "chat.parquet", rows)
    cols = {"instruction": "prompt", "output": "completion"}
    samples = load_hf_dataset(path, columns=cols, lang_column="lang", cache_dir=str(tmp_path / "hf"))
    assert [(s.lang, s.output) for s in samples] == [("no", "Hallo"), ("zh", "你好！")]
    assert [s.id for s in samples] == [s.id for s in load_table(path, columns=cols, lang_column="lang")]
    with pytest.raises(DataError, match="column 'answer'") as exc:
        load_hf_dataset(
            path, "no", columns={"instruction": "prompt", "output": "answer"}, cache_dir=str(tmp_path / "hf")
        )
    _assert_names(exc, "chat.parquet[train]", None, "answer")
    assert len(load_any(path, fmt="hf", columns=cols, lang_column="lang", cache_dir=str(tmp_path / "hf"))) == 2


def test_hf_load_failure_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="datasets.load_dataset failed"):
        load_hf_dataset(_write(tmp_path, "broken.json", "[{"), "en", cache_dir=str(tmp_path / "hf"))
