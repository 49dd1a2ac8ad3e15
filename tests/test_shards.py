"""Sharded pools (mdaq.shards, `mdaq data shard`, `data validate` on shards): round trip to identical pools, one-line
errors naming shard, row and field, bounded-memory streaming, byte-identical reruns, and atomic, refusing writes."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mdaq.cli import main
from mdaq.data.loaders import load_any
from mdaq.errors import DataError
from mdaq.features.pool import load_pool
from mdaq.io import write_jsonl, write_samples
from mdaq.shards import iter_pool_batches, iter_pool_samples, list_shards, validate_shards, write_shards
from mdaq.types import Sample


def _samples(n: int, lang: str = "de", width: int = 1) -> list[Sample]:
    return [
        Sample.create(
            lang,
            f'Frage {i}: „Übersetze“ "x"\n',
            "Eingabe" if i % 3 == 0 else "",
            f"Antwort {i} " * width,
            source=f"pool.jsonl#{i}",
            meta={"k": i, "is_revised": i % 2 == 0, "tags": ["a", None]},
        )
        for i in range(n)
    ]


def _row(s: Sample) -> dict:
    return {**{k: getattr(s, k) for k in ("id", "lang", "instruction", "input", "output")}, "meta": json.dumps(s.meta)}


def _write_parts(folder: Path, parts: list) -> Path:
    """Hand-made shards (no manifest): each part a list of row dicts, a pyarrow Table, or raw bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    for k, part in enumerate(parts):
        path = folder / f"part-{k:05d}.parquet"
        if isinstance(part, bytes):
            path.write_bytes(part)
        else:
            pq.write_table(part if isinstance(part, pa.Table) else pa.Table.from_pylist(part), path)
    return folder


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in captured.err, captured.err
    assert captured.out == ""
    return lines[0]


def test_shards_round_trip_to_an_identical_pool(tmp_path, capsys):
    write_samples(tmp_path / "pool.jsonl", _samples(10))
    assert (
        main(["data", "shard", str(tmp_path / "pool.jsonl"), "--out", str(tmp_path / "sh"), "--rows-per-shard", "4"])
        == 0
    )
    assert json.loads(capsys.readouterr().out)["n_shards"] == 3
    names = sorted(p.name for p in (tmp_path / "sh").iterdir())
    assert names == ["_manifest.json", "part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    expected = load_pool("de", tmp_path / "pool.jsonl")
    assert load_pool("de", tmp_path / "sh") == expected
    assert load_pool("de", str(tmp_path / "sh" / "part-*.parquet")) == expected  # a glob
    assert load_any(tmp_path / "sh") == list(expected.samples)
    summary = validate_shards(tmp_path / "sh")
    assert (summary["n_shards"], summary["n_records"], summary["languages"], summary["n_with_input"]) == (
        3,
        10,
        {"de": 10},
        4,
    )
    assert summary["fields"] == ["instruction", "input", "output", "is_revised", "k", "tags"]
    with pytest.raises(DataError, match=r"part-00000.parquet, record row 0, field 'lang': record of language 'de'"):
        load_pool("fr", tmp_path / "sh")  # a sharded Pool is one language's


def test_shard_converts_an_alpaca_file_with_computed_ids(tmp_path):
    rows = [{"instruction": f"q{i}", "output": f"a{i}", "id": f"alpaca-{i}"} for i in range(5)]
    write_jsonl(tmp_path / "alpaca.jsonl", rows)
    assert main(["data", "shard", str(tmp_path / "alpaca.jsonl"), "--lang", "fr", "--out", str(tmp_path / "sh")]) == 0
    got = list(iter_pool_samples(tmp_path / "sh"))
    assert got == load_any(tmp_path / "alpaca.jsonl", "fr")  # its own "id" is metadata; the id is the content hash
    assert got[0].meta == {"id": "alpaca-0"}


def test_shard_refuses_a_pool_jsonl_whose_id_is_not_its_content_hash(tmp_path, capsys):
    rows = [s.to_dict() for s in _samples(3)]
    rows[2]["id"] = "0123456789abcdef"
    write_jsonl(tmp_path / "pool.jsonl", rows)
    assert main(["data", "shard", str(tmp_path / "pool.jsonl"), "--out", str(tmp_path / "sh")]) == 1
    line = _one_error_line(capsys)
    assert "pool.jsonl, record line 3, field 'id': '0123456789abcdef' is not the content hash" in line
    assert not (tmp_path / "sh").exists() and not (tmp_path / ".sh.tmp").exists()


def test_write_shards_checks_every_sample(tmp_path):
    bad = [*_samples(2), Sample("0123456789abcdef", "de", "q", "", "a")]
    with pytest.raises(DataError, match=r"<samples>, record sample 2, field 'id'"):
        write_shards(bad, tmp_path / "sh")
    with pytest.raises(
        DataError, match=r"record sample 2, field 'id': duplicate id '\w+' \(first in <samples>, sample 0"
    ):
        write_shards([*_samples(2), _samples(1)[0]], tmp_path / "sh")
    with pytest.raises(DataError, match=r"record sample 1, field 'meta': not storable as JSON"):
        write_shards([_samples(1)[0], Sample.create("de", "q", "", "a", meta={"x": float("nan")})], tmp_path / "sh")
    with pytest.raises(DataError, match=r"record samples 0-1: a text field is not a string"):
        write_shards([_samples(1)[0], Sample("x", "de", 5, "", "a")], tmp_path / "sh")  # type: ignore[arg-type]
    assert not (tmp_path / "sh").exists()


GOOD = [_row(s) for s in _samples(6)]


def _with(i: int, **change) -> list[dict]:
    rows = [dict(r) for r in GOOD[3:]]
    rows[i].update(change)
    return rows


P1 = "part-00001.parquet"
INT_INSTRUCTION = pa.table({**{k: [r[k] for r in GOOD[3:]] for k in GOOD[0]}, "instruction": [1, 2, 3]})
DUP = GOOD[1]["id"]
# name -> (the second shard, what the one error line must say); the first shard is GOOD[:3]
BAD = {
    "missing_column": (
        [{k: v for k, v in r.items() if k != "output"} for r in GOOD[3:]],
        f"{P1}, field 'output': missing column",
    ),
    "wrong_type": (INT_INSTRUCTION, f"{P1}, field 'instruction': column has type int64, expected string"),
    "null_output": (_with(2, output=None), f"{P1}, record row 2, field 'output': missing or non-string"),
    "empty_instruction": (_with(1, instruction=""), f"{P1}, record row 1, field 'instruction': is empty"),
    "blank_output": (_with(0, output=" \n"), f"{P1}, record row 0, field 'output': is whitespace-only"),
    "unknown_lang": (_with(1, lang="../x"), f"{P1}, record row 1, field 'lang': unknown language code"),
    "id_not_content": (_with(2, id="0123456789abcdef"), f"{P1}, record row 2, field 'id': '0123456789abcdef' is not"),
    "duplicate_across_shards": (
        [*GOOD[3:5], GOOD[1]],
        f"{P1}, record row 2, field 'id': duplicate id '{DUP}' (first in part-00000.parquet, row 1)",
    ),
    "meta_not_object": (
        _with(0, meta="[1, 2]"),
        f"{P1}, record row 0, field 'meta': expected a JSON object, got list",
    ),
    "meta_malformed": (_with(1, meta="{oops"), f"{P1}, record row 1: malformed JSON"),
    "not_parquet": (b'{"instruction": "a"}\n', f"{P1}: not a readable Parquet file"),
    "truncated": (None, f"{P1}: not a readable Parquet file"),  # built in the test
    "corrupt_page": (None, f"{P1}, record row 0: malformed Parquet"),  # built in the test
    "mixed_schemas": (
        [{**r, "score": 0.5} for r in GOOD[3:]],
        f"{P1}, field 'score': schema differs from part-00000.parquet: extra column",
    ),
    "mixed_types": (
        [{**r, "meta": None} for r in GOOD[3:]],
        f"{P1}, field 'meta': schema differs from part-00000.parquet: type null here, string there",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_validate_reports_a_bad_shard_in_one_line(tmp_path, capsys, case):
    second, expected = BAD[case]
    first: list | bytes = GOOD[:3]
    if case == "truncated":
        _write_parts(tmp_path / "full", [GOOD[:3], GOOD[3:]])
        second = (tmp_path / "full" / "part-00001.parquet").read_bytes()[:-20]
    if case == "corrupt_page":  # a flipped byte inside a data page: caught by the page checksum the writer adds
        write_shards(_samples(6), tmp_path / "full", rows_per_shard=3)
        first = (tmp_path / "full" / "part-00000.parquet").read_bytes()
        part = tmp_path / "full" / "part-00001.parquet"
        chunk = pq.ParquetFile(part).metadata.row_group(0).column(4)  # `output`
        at = chunk.dictionary_page_offset + chunk.total_compressed_size - 1  # its data page's last byte
        data = bytearray(part.read_bytes())
        data[at] ^= 0xFF
        second = bytes(data)
    folder = _write_parts(tmp_path / "pool", [first, second])
    before = _files(folder)
    assert main(["data", "validate", str(folder)]) == 1
    line = _one_error_line(capsys)
    assert expected in line, line
    assert str(folder) in line
    assert _files(folder) == before
    assert (
        main(["data", "shard", str(folder), "--out", str(tmp_path / "out")]) == 1
    )  # the converter reads the same way
    assert expected in _one_error_line(capsys)
    assert not (tmp_path / "out").exists() and not (tmp_path / ".out.tmp").exists()


def test_validate_checks_the_manifest(tmp_path, capsys):
    write_shards(_samples(6), tmp_path / "sh", rows_per_shard=2)
    part = tmp_path / "sh" / "part-00001.parquet"
    stray = tmp_path / "sh" / "part-00009.parquet"
    stray.write_bytes(part.read_bytes())
    assert main(["data", "validate", str(tmp_path / "sh")]) == 1
    assert "part-00009.parquet: not listed in _manifest.json" in _one_error_line(capsys)
    stray.unlink()
    table = pq.read_table(part)
    pq.write_table(table.set_column(4, "output", pa.array(["changed", "changed"])), part)
    assert main(["data", "validate", str(tmp_path / "sh")]) == 1
    assert (
        "part-00001.parquet, field 'shards[1].sha256': part-00001.parquet does not match its sha256"
        in _one_error_line(capsys)
    )
    part.unlink()
    assert main(["data", "validate", str(tmp_path / "sh")]) == 1
    assert "part-00001.parquet: listed in _manifest.json but missing" in _one_error_line(capsys)


def test_optional_columns_may_be_absent_or_all_null(tmp_path):
    rows = [{k: v for k, v in r.items() if k != "meta"} for r in GOOD[:3]]
    _write_parts(tmp_path / "pool", [[{**r, "meta": None, "source": None} for r in rows]])  # typed `null`
    _write_parts(tmp_path / "other", [rows])
    for folder in ("pool", "other"):
        got = list(iter_pool_samples(tmp_path / folder))
        assert [s.source for s in got] == ["part-00000.parquet#0", "part-00000.parquet#1", "part-00000.parquet#2"]
        assert [s.id for s in got] == [r["id"] for r in rows] and all(s.meta == {} for s in got)


def test_an_empty_pool_and_an_empty_glob_are_refused(tmp_path, capsys):
    _write_parts(tmp_path / "pool", [pa.Table.from_pylist(GOOD[:1]).slice(0, 0)])
    assert main(["data", "validate", str(tmp_path / "pool")]) == 1
    assert "pool: no samples: the pool is empty" in _one_error_line(capsys)
    assert main(["data", "validate", str(tmp_path / "none" / "*.parquet")]) == 1
    assert "no files match this pattern" in _one_error_line(capsys)


def test_iteration_is_bounded_by_the_batch_size(tmp_path):
    samples = _samples(1000, width=200)  # ~2 KB answers: ~2 MB of text in 40 shards of 25 rows
    write_shards(samples, tmp_path / "sh", rows_per_shard=25)
    assert len(list_shards(tmp_path / "sh")) == 40
    sizes, ids, peak = [], [], 0
    base = pa.total_allocated_bytes()
    for batch in iter_pool_batches(tmp_path / "sh", batch_size=7):
        sizes.append(batch.num_rows)
        ids += batch.column("id").to_pylist()
        peak = max(peak, pa.total_allocated_bytes() - base)
        assert batch.schema.names == ["id", "lang", "instruction", "input", "output", "source", "meta"]
    assert max(sizes) == 7 and set(sizes[:-1]) == {7} and sum(sizes) == 1000  # batches span shard boundaries
    assert ids == [s.id for s in samples]
    text_bytes = sum(len(s.output.encode()) for s in samples)
    assert peak < text_bytes / 4, (peak, text_bytes)  # reading it whole takes more than text_bytes


def test_shards_are_byte_identical_across_runs(tmp_path):
    write_samples(tmp_path / "pool.jsonl", _samples(25))
    for out in ("a", "b"):
        assert (
            main(
                ["data", "shard", str(tmp_path / "pool.jsonl"), "--out", str(tmp_path / out), "--rows-per-shard", "10"]
            )
            == 0
        )
    first = _files(tmp_path / "a")
    assert first == _files(tmp_path / "b") and len(first) == 4
    assert (
        main(["data", "shard", str(tmp_path / "pool.jsonl"), "--out", str(tmp_path / "a"), "--rows-per-shard", "10"])
        == 0
    )
    assert _files(tmp_path / "a") == first  # replacing its own folder
    meta = pq.ParquetFile(tmp_path / "a" / "part-00000.parquet").metadata.metadata
    assert set(meta) == {b"ARROW:schema"}  # no pandas block, no timestamp


def test_shard_refuses_a_folder_it_did_not_write(tmp_path, capsys):
    write_samples(tmp_path / "pool.jsonl", _samples(3))
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "todo.txt").write_text("mine")
    assert main(["data", "shard", str(tmp_path / "pool.jsonl"), "--out", str(notes)]) == 1
    assert "notes: exists, is not empty and was not written by mdaq" in _one_error_line(capsys)
    other = tmp_path / "other"
    other.mkdir()
    (other / "_manifest.json").write_text('{"format": "something-else"}')
    assert main(["data", "shard", str(tmp_path / "pool.jsonl"), "--out", str(other)]) == 1
    assert "not written by `mdaq data shard`" in _one_error_line(capsys)
    assert (notes / "todo.txt").read_text() == "mine" and sorted(p.name for p in other.iterdir()) == ["_manifest.json"]
    write_shards(_samples(3), tmp_path / "sh")
    assert main(["data", "shard", str(tmp_path / "sh"), "--out", str(tmp_path / "sh")]) == 1  # its own input
    assert "is the input IN" in _one_error_line(capsys)


def test_an_interrupted_write_leaves_the_old_folder_whole(tmp_path):
    out = tmp_path / "sh"
    write_shards(_samples(4), out, rows_per_shard=2)
    before = _files(out)

    def interrupted():
        yield from _samples(9)
        raise KeyboardInterrupt  # after four shard files were written to .sh.tmp

    with pytest.raises(KeyboardInterrupt):
        write_shards(interrupted(), out, rows_per_shard=2)
    assert _files(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sh"]
    (tmp_path / ".sh.tmp").mkdir()  # what a killed run leaves: removed by the next write
    (tmp_path / ".sh.tmp" / "part-00000.parquet").write_bytes(b"half")
    write_shards(_samples(5), out, rows_per_shard=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sh"]
    assert len(list(iter_pool_samples(out))) == 5
