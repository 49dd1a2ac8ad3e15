"""A corpus of malformed inputs for every command-line entry point that reads files or parameters.

Each case runs ``mdaq.cli.main`` in-process and must: exit 1, print exactly one line to stderr, starting with
``error:`` and naming the file (and the record and field where there is one), print no traceback and nothing to
stdout, write no output, and leave every input byte for byte as it was. The inputs are built by the ``corpus``
fixture in a fresh folder for every case.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from mdaq.cli import main
from mdaq.types import Sample

from .conftest import midb_record
from .test_winrate import both

DEEP = "[" * 200_000 + "]" * 200_000
POOL = [Sample.create("de", f"frage {i}", "", f"antwort {i}").to_dict() for i in range(4)]
HUMAN = "language,benchmark,item,annotator,verdict,model,reference\nde,alpaca_eval,1,A,model,m,r\n"
PROFILE = (
    'profile: p\nseed: 0\nseeds: [0]\nlanguages: ["de"]\nmethods: [random]\nbase_model: m\nselectors: {random: {}}\n'
)
BOMB = "".join(f"    l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]\n" for i in range(1, 9))


def _jsonl(rows: list) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def _pool(**change: object) -> str:
    rows = [dict(r) for r in POOL]
    rows[1].update(change)
    return _jsonl(rows)


FILES: dict[str, str | bytes] = {
    # instruction data (data validate, select --pool)
    "deep.json": DEEP,
    "deep.jsonl": '{"instruction": ' + DEEP + "}\n",
    "latin1.jsonl": b'{"instruction": "caf\xe9", "output": "x"}\n',
    "truncated.json": '[{"instruction": "a", "outp',
    "not_list.json": '{"instruction": "a", "output": "b"}',
    "empty_list.json": "[]",
    "null_output.jsonl": _jsonl([{"instruction": "a", "output": "b"}, {"instruction": "c", "output": None}]),
    "twice.jsonl": _jsonl([{"instruction": "a", "output": "b"}] * 2),
    "huge_header.csv": "instruction,output," + "x" * 200_000 + "\na,b,c\n",
    "good.jsonl": _jsonl([{"instruction": "a", "output": "b"}]),
    # mdaq pools
    "pool.jsonl": _jsonl(POOL),
    "pool_traversal.jsonl": _pool(lang="../../x"),
    "pool_absolute.jsonl": _pool(lang="/etc"),
    "pool_dup.jsonl": _pool(id=POOL[0]["id"]),
    "pool_empty_text.jsonl": _pool(output=""),
    "pool_deep.jsonl": '{"id": ' + DEEP + "}\n",
    "pool_latin1.jsonl": _jsonl(POOL).encode().replace(b"antwort 2", b"antw\xf6rt 2"),
    "pool_blank.jsonl": "\n\n",
    # judgments (winrate, human-eval --judgments)
    "judgments.jsonl": _jsonl(both("1", "model", "model")),
    "j_deep.jsonl": '{"benchmark": ' + DEEP + "}\n",
    "j_deep.json": DEEP,
    "j_latin1.jsonl": _jsonl(both("1", "model", "model")).encode().replace(b'"r"', b'"\xe9"', 1),
    "j_bad_winner.jsonl": _jsonl([both("1", "model", "model")[0] | {"winner": "x"}]),
    "j_truncated.jsonl": '{"benchmark": "alpaca_eval", ',
    "j_empty.jsonl": "",
    "annotations.json": json.dumps([{"preference": p, "output_1": "a", "output_2": "b"} for p in (2, 3)]),
    # human evaluation
    "human.csv": HUMAN,
    "human_huge.csv": HUMAN + "de,alpaca_eval,2,A,tie,m," + "r" * 200_000 + "\n",
    "human_latin1.csv": (HUMAN + "de,alpaca_eval,2,B,tie,m,r\xe9\n").encode("latin-1"),
    "human_no_verdict.csv": HUMAN.replace("verdict,", "").replace("model,m,r", "m,r"),
    "human_bad_verdict.csv": HUMAN.replace("A,model", "A,maybe"),
    "human_empty.csv": "",
    # MIDB pairs and QSM folders (qsm eval --pairs, --model)
    "pairs.json": json.dumps([midb_record(0, "de")]),
    "qsm_deep/qsm_config.json": DEEP,
    "qsm_partial/qsm_config.json": json.dumps({"kind": "triplet"}),
    "pairs_deep.json": DEEP,
    "pairs_latin1.json": json.dumps([midb_record(0, "de")]).encode().replace(b"raw answer", b"r\xe4w answer"),
    "pairs_not_list.json": json.dumps(midb_record(0, "de")),
    "pairs_missing.json": json.dumps([{"Raw Instruction": "x"}]),
    # leaderboards
    "board_latin1.csv": b"method,lang\nrandom,d\xe9\n",
    "board_empty.csv": "",
    "board_columns.csv": "name,score\nrandom,1\n",
    "board_long.csv": "method,metric,value\nrandom,expert_pref_acc,0.5\n",
    # profiles (profile check / use)
    "profiles/budget.yaml": PROFILE + "select: {budget: -1}\n",
    "profiles/epochs.yaml": PROFILE + "train: {epochs: -3}\n",
    "profiles/split.yaml": PROFILE + "prepare: {split: {qsm_train: 2.0, pool: -1}}\n",
    "profiles/twice.yaml": PROFILE.replace("[random]", "[random, random]"),
    "profiles/traversal.yaml": PROFILE.replace('["de"]', '["../../x"]'),
    "profiles/bomb.yaml": PROFILE.replace("selectors: {random: {}}", "selectors:\n  random: {}\n  bomb:\n")
    + "    l0: &l0 [a, a, a, a, a, a, a, a, a]\n"
    + BOMB,
    "profiles/clusters.yaml": PROFILE.replace("{random: {}}", "{random: {}, car: {n_clusters: abc}}"),
    "profiles/bogus.yaml": PROFILE.replace("{random: {}}", "{random: {}, mmr: {bogus: 1}}"),
    "profiles/lam.yaml": PROFILE.replace("{random: {}}", '{random: {}, mmr: {lam: "x"}}'),
    "profiles/unregistered.yaml": PROFILE.replace("[random]", "[random, nope]").replace("{}}", "{}, nope: {}}"),
    "profiles/extends.yaml": "extends: ../outside\n",
    "profiles/malformed.yaml": PROFILE + "train: {lr: [\n",
    "profiles/deep.yaml": "[" * 50_000 + "]" * 50_000,
    "outside.yaml": PROFILE,
    # training (train --selection / --params) and a folder mdaq did not write (train --out, data fetch --out)
    "sel.jsonl": _jsonl([{"id": POOL[0]["id"]}, {"id": POOL[1]["id"]}]),
    "sel_unknown.jsonl": _jsonl([{"id": POOL[0]["id"]}, {"id": "no-such-id"}]),
    "params_budget.yaml": PROFILE + "select: {budget: -1}\n",
    "mine/thesis.tex": "three years of work",
}


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """Every input file of the corpus, plus feature folders and a folder named like a file."""
    for rel, content in FILES.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    for name in ("folder.jsonl", "folder.json", "folder.csv"):
        (tmp_path / name).mkdir()
    rng = np.random.default_rng(0)
    features = {
        "feat_nan": {"quality": np.array([0.1, np.nan, 0.3, 0.4])},
        "feat_inf": {"embeddings": np.where(np.arange(8).reshape(4, 2) == 5, np.inf, rng.normal(size=(4, 2)))},
        "feat_short": {"quality": np.array([0.1, 0.2])},
        "feat_object": {"quality": np.array([{"a": 1}, None, 1, 2], dtype=object)},
    }
    for folder, arrays in features.items():
        (tmp_path / folder).mkdir()
        for name, arr in arrays.items():
            np.save(tmp_path / folder / f"{name}.npy", arr, allow_pickle=True)
    return tmp_path


@dataclass(frozen=True)
class Case:
    """One malformed input: the arguments (``{d}`` is the corpus folder) and what the error line must name."""

    argv: str
    names: tuple[str, ...]


def _train(pool="pool.jsonl", sel="sel.jsonl", params="outside.yaml", out="{d}/adapter") -> str:
    return (
        f"train --base-model {{d}}/no-model --pool {{d}}/{pool} --selection {{d}}/{sel} --params {{d}}/{params} "
        f"--out {out}"
    )


def _select(pool: str, extra: str = "", method: str = "random") -> str:
    return f"select --method {method} --pool {{d}}/{pool} --budget 2 --out {{d}}/selection.jsonl {extra}"


def _use(name: str) -> str:
    return f"profile use {name} --profiles {{d}}/profiles --params {{d}}/params.yaml"


def _check(name: str) -> str:
    return f"profile check {name} --profiles {{d}}/profiles --root {{d}}"


CASES: dict[str, Case] = {
    # data validate
    "validate-deep-json": Case("data validate {d}/deep.json --lang de", ("deep.json", "nested too deeply")),
    "validate-deep-jsonl": Case("data validate {d}/deep.jsonl --lang de", ("deep.jsonl", "record 0", "nested")),
    "validate-latin1": Case("data validate {d}/latin1.jsonl --lang de", ("latin1.jsonl", "not valid UTF-8")),
    "validate-truncated": Case("data validate {d}/truncated.json --lang de", ("truncated.json", "malformed JSON")),
    "validate-not-list": Case("data validate {d}/not_list.json --lang de", ("not_list.json", "expected a JSON list")),
    "validate-empty": Case("data validate {d}/empty_list.json --lang de", ("empty_list.json", "no records")),
    "validate-null": Case(
        "data validate {d}/null_output.jsonl --lang de", ("null_output.jsonl", "record 1", "'output'")
    ),
    "validate-twice": Case("data validate {d}/twice.jsonl --lang de", ("twice.jsonl", "record 1", "'id'")),
    "validate-csv-header": Case("data validate {d}/huge_header.csv --lang de", ("huge_header.csv", "line 1")),
    "validate-lang-traversal": Case(
        "data validate {d}/good.jsonl --lang ../../x", ("good.jsonl", "'lang'", "../../x")
    ),
    "validate-lang-absolute": Case("data validate {d}/good.jsonl --lang /etc", ("good.jsonl", "'lang'", "'/etc'")),
    "validate-missing": Case("data validate {d}/nope.json --lang de", ("nope.json", "file not found")),
    "validate-folder-csv": Case("data validate {d}/folder.csv --format csv --lang de", ("folder.csv", "is a folder")),
    # select: selector parameters
    "select-params-list": Case(_select("pool.jsonl", "--params [1]"), ("selectors.random'", "got list")),
    "select-params-string": Case(_select("pool.jsonl", '--params "x"'), ("selectors.random'", "mapping")),
    "select-params-json": Case(_select("pool.jsonl", "--params {bad"), ("--params", "not valid JSON")),
    "select-random-state": Case(
        _select("pool.jsonl", '--params {"random_state":"abc"}'), ("selectors.random.random_state", "'abc'")
    ),
    "select-random-state-negative": Case(
        _select("pool.jsonl", '--params {"random_state":-1}'), ("selectors.random.random_state", "negative")
    ),
    "select-n-clusters": Case(
        _select("pool.jsonl", '--params {"n_clusters":"abc"}', "car"), ("selectors.car.n_clusters", "'abc'")
    ),
    "select-lam": Case(_select("pool.jsonl", '--params {"lam":"x"}', "mmr"), ("selectors.mmr.lam", "'x'")),
    "select-unknown-param": Case(_select("pool.jsonl", '--params {"bogus":1}'), ("selectors.random.bogus", "unknown")),
    "select-unknown-method": Case(_select("pool.jsonl", method="nope"), ("unknown selector 'nope'", "valid:")),
    "select-negative-budget": Case(_select("pool.jsonl").replace("--budget 2", "--budget -1"), ("budget", "-1")),
    "select-negative-seed": Case(_select("pool.jsonl", "--seed -1"), ("--seed", "negative")),
    "select-out-is-pool": Case(
        _select("pool.jsonl").replace("{d}/selection.jsonl", "{d}/pool.jsonl"), ("pool.jsonl", "overwrite an input")
    ),
    # select: pools in mdaq's format
    "pool-traversal": Case(_select("pool_traversal.jsonl"), ("pool_traversal.jsonl", "line 2", "'lang'")),
    "pool-absolute": Case(_select("pool_absolute.jsonl"), ("pool_absolute.jsonl", "line 2", "'lang'")),
    "pool-duplicate-id": Case(_select("pool_dup.jsonl"), ("pool_dup.jsonl", "line 2", "'id'", "duplicate")),
    "pool-empty-text": Case(_select("pool_empty_text.jsonl"), ("pool_empty_text.jsonl", "line 2", "'output'")),
    "pool-deep": Case(_select("pool_deep.jsonl"), ("pool_deep.jsonl", "line 1", "nested too deeply")),
    "pool-latin1": Case(_select("pool_latin1.jsonl"), ("pool_latin1.jsonl", "line 3", "not valid UTF-8")),
    "pool-blank": Case(_select("pool_blank.jsonl", "--lang de"), ("pool_blank.jsonl", "empty")),
    "pool-folder": Case(_select("folder.jsonl"), ("folder.jsonl", "is a folder")),
    # select: features
    "features-nan": Case(
        _select("pool.jsonl", "--features {d}/feat_nan", "quality_topk"), ("quality.npy", "record 1", "'quality'")
    ),
    "features-inf": Case(
        _select("pool.jsonl", "--features {d}/feat_inf", "kcenter"), ("embeddings.npy", "record 2", "'embeddings'")
    ),
    "features-short": Case(
        _select("pool.jsonl", "--features {d}/feat_short", "quality_topk"), ("quality.npy", "2 rows", "'quality'")
    ),
    "features-pickle": Case(
        _select("pool.jsonl", "--features {d}/feat_object", "quality_topk"), ("quality.npy", "not a readable")
    ),
    # winrate
    "winrate-deep-jsonl": Case("winrate {d}/j_deep.jsonl", ("j_deep.jsonl", "line 1", "nested too deeply")),
    "winrate-deep-json": Case("winrate {d}/j_deep.json", ("j_deep.json", "nested too deeply")),
    "winrate-folder": Case("winrate {d}/folder.jsonl", ("folder.jsonl", "is a folder")),
    "winrate-latin1": Case("winrate {d}/j_latin1.jsonl", ("j_latin1.jsonl", "line 1", "not valid UTF-8")),
    "winrate-bad-winner": Case("winrate {d}/j_bad_winner.jsonl", ("j_bad_winner.jsonl", "line 1", "'winner'")),
    "winrate-truncated": Case("winrate {d}/j_truncated.jsonl", ("j_truncated.jsonl", "line 1", "malformed JSON")),
    "winrate-empty": Case("winrate {d}/j_empty.jsonl", ("j_empty.jsonl", "no judgments")),
    "winrate-alpaca-record": Case("winrate {d}/annotations.json", ("annotations.json", "record 1", "'preference'")),
    "winrate-missing": Case("winrate {d}/nope.jsonl", ("nope.jsonl", "no such file")),
    # human-eval
    "human-folder": Case("human-eval {d}/folder.csv", ("folder.csv", "is a folder")),
    "human-field-limit": Case("human-eval {d}/human_huge.csv", ("human_huge.csv", "line 3", "field limit")),
    "human-latin1": Case("human-eval {d}/human_latin1.csv", ("human_latin1.csv", "line 3", "not valid UTF-8")),
    "human-no-column": Case("human-eval {d}/human_no_verdict.csv", ("human_no_verdict.csv", "'verdict'")),
    "human-bad-verdict": Case(
        "human-eval {d}/human_bad_verdict.csv", ("human_bad_verdict.csv", "line 2", "'verdict'")
    ),
    "human-empty": Case("human-eval {d}/human_empty.csv", ("human_empty.csv", "empty file")),
    "human-judgments-deep": Case(
        "human-eval {d}/human.csv --judgments {d}/j_deep.jsonl", ("j_deep.jsonl", "line 1", "nested too deeply")
    ),
    "human-judgments-folder": Case(
        "human-eval {d}/human.csv --judgments {d}/folder.jsonl", ("folder.jsonl", "folder")
    ),
    "human-judgments-alpaca": Case(
        "human-eval {d}/human.csv --judgments {d}/annotations.json", ("annotations.json", "record 1", "'preference'")
    ),
    # qsm eval: its pair file is read before the model
    "qsm-pairs-deep": Case("qsm eval --model {d}/m --pairs {d}/pairs_deep.json", ("pairs_deep.json", "nested")),
    "qsm-pairs-folder": Case("qsm eval --model {d}/m --pairs {d}/folder.json", ("folder.json", "is a folder")),
    "qsm-pairs-latin1": Case("qsm eval --model {d}/m --pairs {d}/pairs_latin1.json", ("pairs_latin1.json", "UTF-8")),
    "qsm-pairs-not-list": Case(
        "qsm eval --model {d}/m --pairs {d}/pairs_not_list.json", ("pairs_not_list.json", "list")
    ),
    "qsm-pairs-field": Case(
        "qsm eval --model {d}/m --pairs {d}/pairs_missing.json", ("pairs_missing.json", "record 0", "'Raw Input'")
    ),
    "qsm-model-missing": Case("qsm eval --model {d}/nope --pairs {d}/pairs.json", ("nope", "not a saved QSM")),
    "qsm-model-deep": Case("qsm eval --model {d}/qsm_deep --pairs {d}/pairs.json", ("qsm_config.json", "nested")),
    "qsm-model-partial": Case(
        "qsm eval --model {d}/qsm_partial --pairs {d}/pairs.json", ("qsm_config.json", "'pooling'", "missing")
    ),
    # leaderboard
    "board-folder": Case("leaderboard --path {d}/folder.csv", ("folder.csv", "is a folder")),
    "board-latin1": Case("leaderboard --path {d}/board_latin1.csv", ("board_latin1.csv", "not valid UTF-8")),
    "board-empty": Case("leaderboard --path {d}/board_empty.csv", ("board_empty.csv", "malformed CSV")),
    "board-columns": Case("leaderboard --path {d}/board_columns.csv", ("board_columns.csv", "'method'", "missing")),
    "board-long": Case("leaderboard --path {d}/board_long.csv", ("board_long.csv", "'language'", "missing")),
    # profile check: the params load strictly before anything else
    "check-budget": Case(_check("budget"), ("budget.yaml", "'select.budget'", "-1")),
    "check-epochs": Case(_check("epochs"), ("epochs.yaml", "'train.epochs'", "-3")),
    "check-split": Case(_check("split"), ("split.yaml", "'prepare.split.qsm_train'", "2.0")),
    "check-twice": Case(_check("twice"), ("twice.yaml", "'methods[1]'", "twice")),
    "check-traversal": Case(_check("traversal"), ("traversal.yaml", "'languages[0]'", "../../x")),
    "check-bomb": Case(_check("bomb"), ("bomb.yaml", "line 11", "aliases")),
    "check-malformed": Case(_check("malformed"), ("malformed.yaml", "malformed YAML at line")),
    "check-deep": Case(_check("deep"), ("deep.yaml", "YAML")),
    "check-name": Case(_check("../outside"), ("profile name '../outside'",)),
    "check-extends": Case(_check("extends"), ("extends.yaml", "'extends'", "../outside")),
    # profile use: params.yaml is never written
    "use-n-clusters": Case(_use("clusters"), ("clusters.yaml", "'selectors.car.n_clusters'", "'abc'")),
    "use-bogus": Case(_use("bogus"), ("bogus.yaml", "'selectors.mmr.bogus'", "unknown parameter")),
    "use-lam": Case(_use("lam"), ("lam.yaml", "'selectors.mmr.lam'", "'x'")),
    "use-unregistered": Case(_use("unregistered"), ("unregistered.yaml", "'methods[1]'", "not a registered")),
    "use-traversal": Case(_use("traversal"), ("traversal.yaml", "'languages[0]'")),
    "use-bomb": Case(_use("bomb"), ("bomb.yaml", "aliases")),
    "use-split": Case(_use("split"), ("split.yaml", "'prepare.split.qsm_train'")),
    "use-name": Case(_use("../outside"), ("profile name '../outside'",)),
    "use-missing": Case(_use("nope"), ("nope.yaml", "unknown profile 'nope'")),
    # train: everything is checked before a model is loaded
    "train-out-is-pool": Case(_train(out="{d}/pool.jsonl"), ("pool.jsonl", "overwrite an input")),
    "train-unknown-id": Case(_train(sel="sel_unknown.jsonl"), ("sel_unknown.jsonl", "no-such-id")),
    "train-bad-params": Case(_train(params="params_budget.yaml"), ("params_budget.yaml", "'select.budget'")),
    "train-pool-deep": Case(_train(pool="pool_deep.jsonl"), ("pool_deep.jsonl", "line 1", "nested too deeply")),
    "train-out-foreign": Case(_train(out="{d}/mine"), ("mine", "not written by mdaq")),
    # data fetch: deletes nothing, writes nothing into a folder it does not own
    "fetch-foreign": Case("data fetch --out {d}/mine", ("mine", "not pinned", "deletes nothing")),
    "fetch-file": Case("data fetch --out {d}/pool.jsonl", ("pool.jsonl", "not a folder")),
}


def _snapshot(folder: Path) -> dict[str, bytes | None]:
    return {p.relative_to(folder).as_posix(): (p.read_bytes() if p.is_file() else None) for p in folder.rglob("*")}


def test_the_corpus_is_large_and_covers_every_entry_point():
    assert len(CASES) >= 60
    words = [case.argv.split() for case in CASES.values()]
    commands = {" ".join(w[:2]) if w[0] in ("data", "profile", "qsm") else w[0] for w in words}
    assert commands == {
        "data validate",
        "data fetch",
        "train",
        "select",
        "winrate",
        "human-eval",
        "qsm eval",
        "leaderboard",
        "profile check",
        "profile use",
    }


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_bad_input_is_one_line_naming_the_file(corpus: Path, case: Case, capsys: pytest.CaptureFixture[str]):
    before = _snapshot(corpus)
    argv = [arg.replace("{d}", str(corpus)) for arg in case.argv.split(" ") if arg]
    code = main(argv)
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 1, (code, out, err)
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err and out == "", (out, err)
    for name in case.names:
        assert name in lines[0], (name, lines[0])
    assert _snapshot(corpus) == before  # no output written, no input changed
