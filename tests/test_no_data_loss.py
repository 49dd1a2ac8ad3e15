"""Nothing the project did not write is ever deleted or overwritten (issue 18, "Data loss"): folder writers swap a
fresh sibling in and replace only folders they own; outputs never equal inputs; `data fetch` deletes nothing."""

from __future__ import annotations

import hashlib
import json

import pytest

from mdaq.cli import main
from mdaq.config import QSMConfig, TrainConfig
from mdaq.data.fetch import fetch
from mdaq.errors import DataError
from mdaq.io import atomic_dir, check_distinct, write_samples
from mdaq.types import Sample


def _tree(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _foreign(tmp_path, name="mine"):
    folder = tmp_path / name
    (folder / ".git").mkdir(parents=True)
    (folder / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (folder / "thesis.tex").write_text("three years of work")
    return folder


# ---- the shared folder swap ---------------------------------------------------------------------------------------


def test_atomic_dir_refuses_a_folder_mdaq_did_not_write(tmp_path):
    folder = _foreign(tmp_path)
    before = _tree(folder)
    with pytest.raises(DataError, match=r"not written by mdaq \(no train_record.json\)"):
        with atomic_dir(folder, owned_by=("train_record.json",)):
            raise AssertionError("never reached: refused before the block runs")
    assert _tree(folder) == before
    assert not (tmp_path / ".mine.tmp").exists()


def test_atomic_dir_refuses_a_file(tmp_path):
    (tmp_path / "out").write_text("a file")
    with pytest.raises(DataError, match="not a folder"):
        with atomic_dir(tmp_path / "out", owned_by=("x",)):
            pass
    assert (tmp_path / "out").read_text() == "a file"


def test_atomic_dir_replaces_its_own_folder_and_keeps_it_on_error(tmp_path):
    out = tmp_path / "out"
    with atomic_dir(out, owned_by=("rec.json",)) as tmp:
        (tmp / "rec.json").write_text("1")
    with pytest.raises(RuntimeError):
        with atomic_dir(out, owned_by=("rec.json",)) as tmp:
            (tmp / "rec.json").write_text("2")
            raise RuntimeError("killed mid-write")
    assert _tree(out) == {"rec.json": b"1"}, "an interrupted write leaves the old folder whole"
    with atomic_dir(out, owned_by=("rec.json",)) as tmp:
        (tmp / "rec.json").write_text("3")
        (tmp / "more").write_text("x")
    assert _tree(out) == {"rec.json": b"3", "more": b"x"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"], "no temp or old folder left"


def test_atomic_dir_accepts_an_empty_folder(tmp_path):
    (tmp_path / "out").mkdir()
    with atomic_dir(tmp_path / "out", owned_by=("rec.json",)) as tmp:
        (tmp / "rec.json").write_text("1")
    assert (tmp_path / "out" / "rec.json").is_file()


def test_check_distinct(tmp_path):
    pool = tmp_path / "pool.jsonl"
    pool.write_text("")
    with pytest.raises(DataError, match="--pool"):
        check_distinct(pool, {"--pool": pool})
    with pytest.raises(DataError, match="holds it"):
        check_distinct(tmp_path, {"--pool": pool})
    with pytest.raises(DataError):  # another spelling of the same path
        check_distinct(tmp_path / "sub" / ".." / "pool.jsonl", {"--pool": pool, "--features": None})
    check_distinct(tmp_path / "sel.jsonl", {"--pool": pool, "--features": None})


# ---- the writers that used to delete -----------------------------------------------------------------------------


def _manifest(files):
    return {
        "commit": "0" * 40,
        "url_template": "http://127.0.0.1:9/{commit}/{path}",
        "files": {k: hashlib.sha256(v).hexdigest() for k, v in files.items()},
    }


def test_fetch_deletes_nothing_it_did_not_write(tmp_path):
    files = {"midb/de.json": b"[1]"}
    mirror = tmp_path / "mirror"
    (mirror / "midb").mkdir(parents=True)
    (mirror / "midb" / "de.json").write_bytes(b"[1]")
    repo = _foreign(tmp_path, "repo")  # `mdaq data fetch --out .` inside a repository
    before = _tree(repo)
    with pytest.raises(DataError, match=r"2 file\(s\) that are not pinned.*deletes nothing"):
        fetch(repo, mirror=mirror, manifest=_manifest(files))
    assert _tree(repo) == before, "nothing deleted, nothing written"


def test_fetch_removes_only_its_own_partial_files(tmp_path):
    files = {"midb/de.json": b"[1]"}
    mirror = tmp_path / "mirror"
    (mirror / "midb").mkdir(parents=True)
    (mirror / "midb" / "de.json").write_bytes(b"[1]")
    out = tmp_path / "data"
    (out / "midb").mkdir(parents=True)
    (out / "midb" / ".de.json.partial-abc123").write_bytes(b"[")  # a fetch killed mid-copy
    assert fetch(out, mirror=mirror, manifest=_manifest(files)) == {"midb/de.json": "mirror"}
    assert _tree(out) == {"midb/de.json": b"[1]"}


def test_cli_fetch_into_a_repository_is_refused(tmp_path, capsys, monkeypatch):
    repo = _foreign(tmp_path, "repo")
    before = _tree(repo)
    monkeypatch.setenv("MDAQ_DATA_MIRROR", str(tmp_path / "nowhere"))
    assert main(["data", "fetch", "--out", str(repo)]) != 0
    err = capsys.readouterr().err
    assert "not pinned" in err and "Traceback" not in err
    assert _tree(repo) == before


def test_cli_select_refuses_to_overwrite_its_pool(tmp_path, capsys):
    pool = tmp_path / "pool.jsonl"
    write_samples(pool, [Sample.create("de", f"Frage {i}?", "", f"Antwort {i}.") for i in range(8)])
    before = pool.read_bytes()
    code = main(["select", "--method", "random", "--pool", str(pool), "--budget", "3", "--out", str(pool)])
    assert code != 0
    assert "refusing to overwrite an input" in capsys.readouterr().err
    assert pool.read_bytes() == before


def test_lora_refuses_a_foreign_output_folder_before_training(tiny_lm, tmp_path):
    from mdaq.training.lora import train_lora

    folder = _foreign(tmp_path)
    before = _tree(folder)
    samples = [Sample.create("fr", f"Répète {i}.", "", f"mot {i}") for i in range(4)]
    cfg = TrainConfig(lora_r=2, epochs=1, batch_size=4, max_seq_len=32)
    with pytest.raises(DataError, match="not written by mdaq"):
        train_lora(tiny_lm, samples, cfg, folder, seed=0)
    with pytest.raises(DataError, match="not written by mdaq"):
        train_lora(tiny_lm, samples, cfg, tmp_path / "adapter", seed=0, ckpt_dir=folder)
    assert _tree(folder) == before and not (tmp_path / "adapter").exists()


def test_train_from_files_refuses_an_input_as_output(tmp_path):
    from mdaq.training.lora import train_from_files

    pool = tmp_path / "pool.jsonl"
    write_samples(pool, [Sample.create("fr", "a", "", "b")])
    with pytest.raises(DataError, match="refusing to overwrite an input"):
        train_from_files(tmp_path / "model", pool, tmp_path / "sel.jsonl", pool)


def test_qsm_writers_refuse_a_foreign_folder(tmp_path):
    from mdaq.quality.train import skip_training, train_qsm

    folder = _foreign(tmp_path)
    before = _tree(folder)
    with pytest.raises(DataError, match="not written by mdaq"):
        skip_training(folder, "no method ranks with it")
    rows = [{"instruction": "q", "input": "", "chosen": "good", "rejected": "bad"}]
    with pytest.raises(DataError, match="not written by mdaq"):  # before the encoder is even loaded
        train_qsm(tmp_path / "no-such-encoder", rows, QSMConfig(), folder)
    assert _tree(folder) == before


def test_skip_training_replaces_its_own_folder(tmp_path):
    from mdaq.quality.train import skip_training

    out = tmp_path / "qsm"
    skip_training(out, "first")
    skip_training(out, "second")
    assert json.loads((out / "train_record.json").read_text())["reason"] == "second"


def test_checkpoint_commit_refuses_a_foreign_folder(tmp_path):
    from mdaq.models import checkpoint

    folder = _foreign(tmp_path, "run.ckpt")
    before = _tree(folder)
    tmp = checkpoint.start(folder)
    (tmp / "weights").write_text("w")
    with pytest.raises(DataError, match="no state.json"):
        checkpoint.commit(folder, {"step": 1})
    assert _tree(folder) == before


def test_hub_download_refuses_a_hand_made_folder(tmp_path):
    pytest.importorskip("huggingface_hub")
    from mdaq.models.hub import HUB_MODELS, build_hub_model

    folder = _foreign(tmp_path, "model")
    before = _tree(folder)
    with pytest.raises(DataError, match="asset.json"):
        build_hub_model(next(iter(HUB_MODELS)), folder)
    assert _tree(folder) == before
