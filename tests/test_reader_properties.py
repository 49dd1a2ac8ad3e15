"""Property-based tests of the JSONL and CSV readers: what the writers write reads back unchanged (with or without a
UTF-8 BOM), and arbitrary bytes either read or raise one DataError, never another exception."""

from __future__ import annotations

import csv
import io
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mdaq.data.midb import load_pairs
from mdaq.data.readers import read_json_records, read_table
from mdaq.errors import DataError
from mdaq.io import read_json, read_jsonl, read_samples, write_jsonl, write_samples
from mdaq.judging.human_eval import read_human_csv
from mdaq.judging.winrate import read_judgments
from mdaq.types import Sample

hypothesis = pytest.importorskip("hypothesis")  # a dev requirement (requirements/lock.txt)
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

SETTINGS = settings(max_examples=60, deadline=None)
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)  # any code point a file can hold
KEYS = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=8)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3),
    max_leaves=10,
)
CELL = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\r"), max_size=20)


def _in_tmp(name: str, data: bytes, read: Callable[[Path], Any]) -> Any:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / name
        path.write_bytes(data)
        return read(path)


@SETTINGS
@given(rows=st.lists(st.dictionaries(KEYS, JSON_VALUES, max_size=4), max_size=5), bom=st.booleans())
def test_jsonl_round_trip(rows, bom):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "rows.jsonl"
        write_jsonl(path, rows)
        if bom:
            path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
        assert read_jsonl(path) == rows
        assert read_json_records(path) == rows  # the loaders' reader agrees with mdaq's own


@SETTINGS
@given(value=JSON_VALUES, bom=st.booleans())
def test_json_round_trip(value, bom):
    data = json.dumps(value, ensure_ascii=False).encode()
    assert _in_tmp("v.json", b"\xef\xbb\xbf" * bom + data, read_json) == value


@SETTINGS
@given(texts=st.lists(st.tuples(TEXT.filter(str.strip), TEXT, TEXT.filter(str.strip)), min_size=1, max_size=5))
def test_pool_round_trip(texts):
    samples = list({s.id: s for s in (Sample.create("de", *t) for t in texts)}.values())
    with tempfile.TemporaryDirectory() as d:
        write_samples(Path(d) / "pool.jsonl", samples)
        assert read_samples(Path(d) / "pool.jsonl") == samples


@SETTINGS
@given(rows=st.lists(st.tuples(CELL.filter(str.strip), CELL.filter(str.strip), CELL), min_size=1, max_size=5))
def test_csv_table_round_trip(rows):
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["instruction", "output", "note"])
    writer.writerows(rows)
    header, records = _in_tmp("t.csv", buf.getvalue().encode(), read_table)
    assert header == ["instruction", "output", "note"]
    assert [(r["instruction"], r["output"], r["note"]) for r in records] == rows


WORD = st.text(st.characters(whitelist_categories=("L", "N")), min_size=1, max_size=8)


@SETTINGS
@given(
    votes=st.lists(st.tuples(WORD, WORD, WORD, st.sampled_from(["model", "Reference", " tie "])), min_size=1),
    bom=st.booleans(),
)
def test_human_csv_round_trip(votes, bom):
    unique = {(lang, item, annotator): verdict for lang, item, annotator, verdict in votes}
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(["language", "benchmark", "item", "annotator", "verdict", "model", "reference"])
    writer.writerows(
        [lang, "alpaca_eval", item, ann, verdict, "m", "r"] for (lang, item, ann), verdict in unique.items()
    )
    df = _in_tmp("h.csv", b"\xef\xbb\xbf" * bom + buf.getvalue().encode(), read_human_csv)
    assert list(zip(df["lang"], df["item"], df["annotator"], df["verdict"], strict=True)) == [
        (*key, verdict.strip().lower()) for key, verdict in unique.items()
    ]


READERS: dict[str, Callable[[Path], Any]] = {
    "rows.jsonl": read_jsonl,
    "obj.json": read_json,
    "pool.jsonl": read_samples,
    "data.json": read_json_records,
    "data.jsonl": read_json_records,
    "judgments.jsonl": read_judgments,
    "annotations.json": read_judgments,
    "human.csv": read_human_csv,
    "table.csv": read_table,
    "German.json": lambda p: load_pairs(p, "de", gaps=()),
}
PREFIXES = [
    b"",
    b"\xef\xbb\xbf",
    b"[",
    b'{"a": ',
    b"instruction,output\n",
    b"language,benchmark,item,annotator,verdict",
]


@SETTINGS
@given(name=st.sampled_from(sorted(READERS)), prefix=st.sampled_from(PREFIXES), data=st.binary(max_size=200))
def test_arbitrary_bytes_read_or_raise_one_data_error(name, prefix, data):
    try:
        _in_tmp(name, prefix + data, READERS[name])
    except DataError as e:
        assert name in str(e) and "\n" not in str(e)
