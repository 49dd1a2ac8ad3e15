"""Every reader treats bytes the same way: a UTF-8 BOM is accepted, bad UTF-8, deeply nested JSON and a folder
where a file belongs are one DataError naming the file; mdaq-format pools get the loaders' checks."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mdaq.config import load_params
from mdaq.data.loaders import load_any
from mdaq.data.midb import load_pairs
from mdaq.data.readers import read_json_records, read_table
from mdaq.errors import DataError
from mdaq.io import read_csv, read_json, read_jsonl, read_samples
from mdaq.judging.human_eval import read_human_csv
from mdaq.judging.winrate import read_judgments
from mdaq.types import Sample

from .conftest import midb_record
from .test_winrate import both

POOL = [Sample.create("de", f"frage {i}", "", f"antwort {i}").to_dict() for i in range(3)]
HUMAN = "language,benchmark,item,annotator,verdict,model,reference\nde,alpaca_eval,1,A,model,m,r\n"
PARAMS = (
    'profile: t\nseed: 0\nseeds: [0]\nlanguages: ["de"]\nmethods: [random]\nbase_model: m\nselectors: {random: {}}\n'
)


def _jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


# reader name -> (file name, good content, the read call); the JSON ones also get a deeply nested file
READERS: dict[str, tuple[str, str, Callable[[Path], Any]]] = {
    "io.read_jsonl": ("rows.jsonl", _jsonl([{"a": "ä"}]), read_jsonl),
    "io.read_json": ("obj.json", json.dumps({"a": "ä"}), read_json),
    "io.read_samples": ("pool.jsonl", _jsonl(POOL), read_samples),
    "readers.json": ("data.json", json.dumps([{"instruction": "ä", "output": "b"}]), read_json_records),
    "readers.jsonl": ("data.jsonl", _jsonl([{"instruction": "ä", "output": "b"}]), read_json_records),
    "loaders.alpaca": ("alpaca.json", json.dumps([{"instruction": "ä", "output": "b"}]), lambda p: load_any(p, "de")),
    "readers.csv": ("data.csv", "instruction,output\nä,b\n", read_table),
    "winrate.mdaq": ("judgments.jsonl", _jsonl(both("1", "model", "model")), lambda p: read_judgments(p).records),
    "winrate.alpaca": (
        "annotations.json",
        json.dumps([{"preference": 2, "output_1": "ä", "output_2": "b"}]),
        lambda p: read_judgments(p).records,
    ),
    "human_eval.csv": ("human.csv", HUMAN, lambda p: read_human_csv(p).to_dict("records")),
    "midb.pairs": ("German.json", json.dumps([midb_record(0, "de")]), lambda p: load_pairs(p, "de", gaps=())),
    "io.read_csv": ("board.csv", "method,lang\nä,de\n", lambda p: read_csv(p).to_dict("records")),
    "config.params": ("params.yaml", PARAMS, load_params),
}
JSON_READERS = [name for name, (file, _, _) in READERS.items() if file.endswith((".json", ".jsonl"))]


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("reader", sorted(READERS))
def test_a_utf8_bom_is_accepted_by_every_reader(tmp_path, reader):
    """The finding: a BOM was accepted by the loaders but rejected by `winrate` and misreported by `human-eval`."""
    name, text, read = READERS[reader]
    plain = read(_write(tmp_path, name, text.encode("utf-8")))
    assert read(_write(tmp_path, name, b"\xef\xbb\xbf" + text.encode("utf-8"))) == plain


@pytest.mark.parametrize("reader", sorted(READERS))
def test_bad_utf8_names_the_file(tmp_path, reader):
    """The finding: decoding errors named no file."""
    name, text, read = READERS[reader]
    path = _write(tmp_path, name, text.encode("utf-8").replace("ä".encode(), b"\xe4") if "ä" in text else b"\xff\xfe")
    with pytest.raises(DataError, match="not valid UTF-8") as e:
        read(path)
    assert name in str(e.value)


@pytest.mark.parametrize("reader", sorted(set(READERS) - {"loaders.alpaca"}))  # load_any: a folder is a HF dataset
def test_a_folder_is_refused_naming_it(tmp_path, reader):
    """The finding: a folder path ended in IsADirectoryError's traceback."""
    name, _, read = READERS[reader]
    (tmp_path / name).mkdir()
    with pytest.raises(DataError, match="is a folder, expected a file") as e:
        read(tmp_path / name)
    assert name in str(e.value)


@pytest.mark.parametrize("reader", sorted(JSON_READERS))
def test_deeply_nested_json_is_one_error_naming_the_file(tmp_path, reader):
    """The finding: RecursionError on deeply nested JSON in every reader."""
    name, _, read = READERS[reader]
    deep = "[" * 200_000 + "]" * 200_000
    deep = deep if name.endswith(".json") else '{"a": ' + deep + "}\n"
    with pytest.raises(DataError, match="JSON nested too deeply") as e:
        read(_write(tmp_path, name, deep.encode()))
    assert name in str(e.value)


def test_deeply_nested_yaml_is_one_error(tmp_path):
    path = _write(tmp_path, "params.yaml", ("[" * 50_000 + "]" * 50_000).encode())
    with pytest.raises(DataError, match="params.yaml: (YAML nested too deeply|malformed YAML)"):
        load_params(path)


def test_human_eval_csv_field_size_limit_is_one_error(tmp_path):
    """The finding: the csv module's field-size limit ended in a `_csv.Error` traceback."""
    path = _write(tmp_path, "human.csv", (HUMAN + "de,alpaca_eval,2,A,tie,m," + "r" * 200_000 + "\n").encode())
    with pytest.raises(DataError, match=r"human.csv, record line 3: malformed CSV: field larger than field limit"):
        read_human_csv(path)


def test_csv_header_over_the_field_size_limit_is_one_error(tmp_path):
    path = _write(tmp_path, "data.csv", ("instruction,output," + "x" * 200_000 + "\na,b,c\n").encode())
    with pytest.raises(DataError, match=r"data.csv, record line 1: malformed CSV header"):
        read_table(path)


@pytest.mark.parametrize(
    ("edit", "where", "match"),
    [
        (lambda rows: rows[1].update(lang="../../x"), "line 2, field 'lang'", "unknown language code '../../x'"),
        (lambda rows: rows[1].update(lang="/etc"), "line 2, field 'lang'", "unknown language code '/etc'"),
        (lambda rows: rows[2].update(id=rows[0]["id"]), "line 3, field 'id'", "duplicate id .* \\(first on line 1\\)"),
        (lambda rows: rows[0].update(output=""), "line 1, field 'output'", "is empty"),
        (lambda rows: rows[1].update(instruction=" \t"), "line 2, field 'instruction'", "is whitespace-only"),
        (lambda rows: rows[1].update(id=""), "line 2, field 'id'", "is empty"),
        (lambda rows: rows[1].update(meta=[1]), "line 2, field 'meta'", "expected an object"),
        (lambda rows: rows.clear(), "pool.jsonl", "no samples: the pool is empty"),
    ],
)
def test_mdaq_pools_get_the_loaders_checks(tmp_path, edit, where, match):
    """The finding: pools in mdaq's own JSONL format skipped the loaders' checks (traversal language codes,
    duplicated ids that are then selected twice, empty texts and empty pools all passed)."""
    rows = [dict(r) for r in POOL]
    edit(rows)
    path = _write(tmp_path, "pool.jsonl", _jsonl(rows).encode())
    with pytest.raises(DataError, match=match) as e:
        read_samples(path)
    assert "pool.jsonl" in str(e.value) and where in str(e.value)
