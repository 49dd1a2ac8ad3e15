"""Strict params loading: unknown keys, wrong types, the YAML "no" trap, profiles."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from mdaq import SELECTORS, DataError, load_params
from mdaq.cli import main
from mdaq.config import Params, render_params, run_grid, section_sha, select_grid
from mdaq.submissions.recipe import plan_reuse

from .conftest import REPO


def _write(tmp_path, text):
    path = tmp_path / "params.yaml"
    path.write_text(text, encoding="utf-8")
    return path


BASE = (
    'profile: t\nseed: 0\nseeds: [0]\nlanguages: ["de", "no"]\nmethods: [random]\nbase_model: tiny-llama\n'
    "selectors: {random: {}}\n"
)


def test_minimal_params_load_with_defaults(tmp_path):
    p = load_params(_write(tmp_path, BASE))
    assert p.languages == ("de", "no") and p.select.budget == 12 and p.train.target_modules[0] == "q_proj"


def test_unquoted_no_is_a_clear_error(tmp_path):
    text = BASE.replace('["de", "no"]', "[de, no]")
    assert yaml.safe_load(text)["languages"] == ["de", False]  # the trap itself
    with pytest.raises(DataError, match=r"languages\[1\].*quote them in YAML"):
        load_params(_write(tmp_path, text))


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        ("select: {budgett: 5}\n", r"field 'select.budgett': unknown key"),
        ("select: {budget: five}\n", r"field 'select.budget': expected int"),
        ("train: {lr: true}\n", r"field 'train.lr': expected float"),
        ("bogus: 1\n", r"field 'bogus': unknown key"),
        ("prepare: {split: {pool: [1]}}\n", r"field 'prepare.split.pool'"),
        ("train: {precision: fp16}\n", r"field 'train.precision': 'fp16' is not one of"),
        ("qsm: {dropout: high}\n", r"field 'qsm.dropout': expected float"),
        ("select: {pooled_quota: uniform}\n", r"field 'select.pooled_quota'"),
    ],
)
def test_bad_params_name_the_key(tmp_path, extra, match):
    with pytest.raises(DataError, match=match):
        load_params(_write(tmp_path, BASE + extra))


def test_method_without_selector_params(tmp_path):
    with pytest.raises(DataError, match="method 'full' has no entry under selectors"):
        load_params(_write(tmp_path, BASE.replace("[random]", "[random, full]")))


def test_section_sha_changes_only_with_its_sections(tmp_path):
    a = load_params(_write(tmp_path, BASE))
    b = load_params(_write(tmp_path, BASE + "train: {lr: 0.1}\n"))
    assert section_sha(a, "select") == section_sha(b, "select")
    assert section_sha(a, "train") != section_sha(b, "train")


def test_repo_profiles_are_valid_and_params_is_generated_from_one():
    profiles = {p.stem: load_params(p) for p in (REPO / "profiles").glob("*.yaml")}
    assert {"smoke", "default"} <= set(profiles)
    params = load_params(REPO / "params.yaml")
    assert params.runs == run_grid(params) and params.selects == select_grid(params)  # the generated grids, current
    assert dataclasses.replace(params, runs={}, selects={}, reused_runs={}) in profiles.values()
    # params.yaml is exactly what `mdaq profile use <its profile>` writes (the reuse plan reads the method cards)
    assert (REPO / "params.yaml").read_text(encoding="utf-8") == render_params(
        REPO / "profiles" / f"{params.profile}.yaml", plan_reuse(params, REPO / "submissions")
    )


def _plain(value):
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return list(value) if isinstance(value, tuple) else value


def test_one_place_for_defaults_the_default_profile():
    """Every section of profiles/default.yaml lists every key, with the dataclass's default; every selector's
    entry holds its __init__ defaults; the other profiles extend it and hold only what they change."""
    import inspect

    from mdaq.config import load_profile

    base = yaml.safe_load((REPO / "profiles" / "default.yaml").read_text(encoding="utf-8"))
    assert "extends" not in base
    for f in dataclasses.fields(Params):
        if f.default_factory is dataclasses.MISSING:
            continue  # profile, seed, languages, methods, base_model: no default, every profile sets them
        default = f.default_factory()
        if f.name in ("runs", "selects", "reused_runs"):
            assert f.name not in base  # generated into params.yaml, never in a profile
            continue
        if f.name == "selectors":
            for name in SELECTORS.names():
                sig = inspect.signature(SELECTORS.get(name).__init__).parameters
                init = {k: p.default for k, p in sig.items() if k not in ("self", "random_state")}
                assert base["selectors"].get(name) == init, f"selectors.{name} in profiles/default.yaml"
            continue
        assert base[f.name] == _plain(default), f"section {f.name}: profiles/default.yaml vs mdaq/config.py"
    # like `methods`, `submissions` names content, not a setting: a params file without it runs none, and the
    # default profile lists the repository's submissions (tests/test_repo_submissions.py: every folder, once)
    assert Params.__dataclass_fields__["submissions"].default == () and base["submissions"]
    for path in sorted((REPO / "profiles").glob("*.yaml")):
        if path.stem == "default":
            continue
        own = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert own.pop("extends") == "default", path
        merged_base = load_profile(REPO / "profiles" / "default.yaml")
        for section, value in own.items():
            if isinstance(value, dict) and section != "selectors":
                same = [k for k, v in value.items() if merged_base[section].get(k) == v]
                assert not same, f"{path.name} repeats the default of {section}.{same}"
            elif section not in ("profile", "selectors"):
                assert value != merged_base[section], f"{path.name} repeats the default of {section}"


def test_profiles_extend_and_merge(tmp_path):
    from mdaq.config import load_profile

    (tmp_path / "a.yaml").write_text("x: 1\nsec: {p: 1, q: [1, 2]}\n")
    (tmp_path / "b.yaml").write_text("extends: a\nsec: {q: [3]}\n")
    (tmp_path / "c.yaml").write_text("extends: c\n")
    (tmp_path / "d.yaml").write_text("extends: nowhere\n")
    assert load_profile(tmp_path / "b.yaml") == {"x": 1, "sec": {"p": 1, "q": [3]}}  # mappings merge, lists replace
    with pytest.raises(DataError, match="cycle"):
        load_profile(tmp_path / "c.yaml")
    with pytest.raises(DataError, match="no .*nowhere.yaml"):
        load_profile(tmp_path / "d.yaml")


def test_profile_use_copies_a_validated_profile(tmp_path):
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "mine.yaml").write_text(BASE, encoding="utf-8")
    (tmp_path / "profiles" / "broken.yaml").write_text(BASE + "oops: 1\n", encoding="utf-8")
    target = tmp_path / "params.yaml"
    args = ["--profiles", str(tmp_path / "profiles"), "--params", str(target)]
    assert main(["profile", "use", "mine", *args]) == 0
    written = target.read_text()
    assert written.startswith(BASE) and "runs:\n  random-de-0: {method: random, lang: de, seed: 0}" in written
    assert load_params(target).runs == run_grid(load_params(tmp_path / "profiles" / "mine.yaml"))
    assert main(["profile", "use", "broken", *args]) == 1
    assert main(["profile", "use", "nope", *args]) == 1
    assert target.read_text() == written


def test_method_seeds_and_the_generated_grid(tmp_path):
    p = load_params(_write(tmp_path, BASE + "seeds: [0, 1]\nmethod_seeds: {random: [0, 1, 2]}\n"))
    assert p.seeds_of("random") == (0, 1, 2) and len(run_grid(p)) == 2 * 3
    # an entry for a method the profile does not run is ignored (the default's controls, in a profile without them);
    # a name no selector is registered under is refused where the profile is adopted
    p = load_params(_write(tmp_path, BASE + "seeds: [1]\nmethod_seeds: {full: [0], oracle_raw: [0]}\n"))
    assert p.seeds_of("random") == (1,) and len(run_grid(p)) == 2
    from mdaq.selectors import check_selectors

    check_selectors(p.methods, p.selectors, "mine.yaml", p.method_seeds)
    with pytest.raises(DataError, match="no selector is registered as 'fulll'") as e:
        check_selectors(p.methods, p.selectors, "mine.yaml", {"fulll": [0]})
    assert e.value.field == "method_seeds.fulll"
    for bad, message in (
        ("method_seeds: {random: [1, 2]}\n", "include seeds\\[0\\]"),
        ("method_seeds: {random: []}\n", "non-empty list"),
        ("runs: {random-de-0: {method: random, lang: de, seed: 0}, x: {}}\n", "out of date"),
    ):
        with pytest.raises(DataError, match=message):
            load_params(_write(tmp_path, BASE + bad))


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        ('languages: ["de", "../../x"]\n', r"field 'languages\[1\]': unknown language code '../../x'"),
        ('languages: ["/abs/path"]\n', r"field 'languages\[0\]': unknown language code '/abs/path'"),
        ('languages: ["xx"]\n', r"field 'languages\[0\]': unknown language code 'xx'"),
        ('languages: [""]\n', r"field 'languages\[0\]': unknown language code ''"),
        ('languages: ["de", "ja", "de"]\n', r"field 'languages\[2\]': 'de' is listed twice"),
        ("languages: []\n", r"field 'languages': must list at least one"),
        ('qsm: {unseen_langs: ["../ko"]}\n', r"field 'qsm.unseen_langs\[0\]'"),
        ("methods: [random, random]\nselectors: {random: {}}\n", r"field 'methods\[1\]': 'random' is listed twice"),
        ('methods: ["../../x"]\nselectors: {"../../x": {}}\n', r"field 'methods\[0\]': method name '../../x'"),
        ("base_model: ../../etc\n", r"field 'base_model'"),
        ("qsm: {encoder: /abs/enc}\n", r"field 'qsm.encoder'"),
        ("judge: {prompt: ../../secret}\n", r"field 'judge.prompt'"),
        (
            "train: {accelerate_config: /etc/x.yaml}\n",
            r"field 'train.accelerate_config': '/etc/x.yaml' is an absolute",
        ),
        ("selectors: {random: 5}\n", r"field 'selectors.random': expected a mapping of parameters, got int"),
        ("selectors: {random: {}, no: {}}\n", r"field 'selectors': key False is not a string"),
    ],
)
def test_names_are_validated_at_load(tmp_path, extra, match):
    """The finding: profile check and profile use accepted "../../x", absolute paths, unknown codes, duplicates."""
    with pytest.raises(DataError, match=match):
        load_params(_write(tmp_path, BASE + extra))


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        ("select: {budget: -1}\n", r"field 'select.budget': -1 is out of range: it must be >= 1"),
        ("select: {budget: 0}\n", r"field 'select.budget': 0 is out of range"),
        ("train: {epochs: -3}\n", r"field 'train.epochs': -3 is out of range: it must be >= 1"),
        ("prepare: {split: {qsm_train: 2.0, pool: -1}}\n", r"field 'prepare.split.qsm_train': 2.0 is out of range"),
        (
            "prepare: {split: {pool: -1.0}}\n",
            r"field 'prepare.split.pool': -1.0 is out of range: it must be in \[0, 1\]",
        ),
        ("prepare: {split: {qsm_train: 0.6, pool: 0.3}}\n", r"field 'prepare.split': the fractions add up to 1.1"),
        ("train: {batch_size: 0}\n", r"field 'train.batch_size': 0 is out of range"),
        ("train: {max_seq_len: -5}\n", r"field 'train.max_seq_len'"),
        ("qsm: {batch_size: 0}\n", r"field 'qsm.batch_size'"),
        ("train: {lr: 0}\n", r"field 'train.lr': 0.0 is out of range: it must be > 0"),
        ("train: {lr: .nan}\n", r"field 'train.lr': nan is not a finite number"),
        ("judge: {timeout_s: .inf}\n", r"field 'judge.timeout_s': inf is not a finite number"),
        ("generate: {top_p: 0}\n", r"field 'generate.top_p': 0.0 is out of range: it must be in \(0, 1\]"),
        ("prepare: {p_revised: 1.5}\n", r"field 'prepare.p_revised'"),
        ("seed: -1\n", r"field 'seed': -1 is out of range"),
        ("seeds: [0, -2]\n", r"field 'seeds'"),
    ],
)
def test_values_out_of_range_are_refused(tmp_path, extra, match):
    """The finding: `profile check` reported no problems for budget -1, epochs -3, split fractions {2.0, -1}."""
    with pytest.raises(DataError, match=match):
        load_params(_write(tmp_path, BASE + extra))


def test_every_range_names_a_real_key():
    from mdaq.config import RANGES, params_from_dict

    params = params_from_dict(yaml.safe_load(BASE))
    for key in RANGES:
        node = params
        for part in key.split("."):
            node = getattr(node, part)  # AttributeError: a typo in RANGES


@pytest.mark.parametrize(
    "text",
    [
        BASE + "selectors: {random: &a {}}\n",
        BASE.replace("methods: [random]", "methods: &m [random]") + "sah: {methods: *m}\n",
        # the alias bomb under `selectors`: nine levels of nine aliases expand to 9^9 list items
        BASE.replace("selectors: {random: {}}", "selectors:\n  random: {}\n  bomb:\n")
        + "    l0: &l0 [a, a, a, a, a, a, a, a, a]\n"
        + "".join(f"    l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]\n" for i in range(1, 9)),
    ],
)
def test_yaml_anchors_and_aliases_are_refused(tmp_path, text):
    """The finding: a YAML alias bomb under `selectors` passed load_params and exhausted memory inside DVC."""
    with pytest.raises(DataError, match=r"line \d+, column \d+: YAML anchors and aliases .* are not allowed"):
        load_params(_write(tmp_path, text))


def test_extends_must_name_a_profile_beside_it(tmp_path):
    (tmp_path / "p").mkdir()
    (tmp_path / "outside.yaml").write_text(BASE, encoding="utf-8")
    (tmp_path / "p" / "child.yaml").write_text("extends: ../outside\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"field 'extends': profile name '../outside'"):
        load_params(tmp_path / "p" / "child.yaml")


@pytest.mark.parametrize(
    ("entry", "field", "match"),
    [
        ("{car: {n_clusters: abc}}", "selectors.car.n_clusters", "expected an int, got 'abc'"),
        ("{car: {n_clusters: -1}}", "selectors.car.n_clusters", "-1 is negative"),
        ("{mmr: {lam: x}}", "selectors.mmr.lam", "expected a number, got 'x'"),
        ("{mmr: {lam: 1.5}}", "selectors.mmr.lam", r"1.5 is not in \[0, 1\]"),
        ("{mmr: {bogus: 1}}", "selectors.mmr.bogus", "unknown parameter"),
        ("{mdaq_das: {n_clusters: auto}}", "selectors.mdaq_das.n_clusters", "'budget'"),
        ("{deita: {max_similarity: 2}}", "selectors.deita.max_similarity", r"not a cosine similarity"),
        ("{nope: {}}", "selectors.nope", "no selector is registered"),
    ],
)
def test_profile_use_checks_selector_parameters_with_the_selector(tmp_path, entry, field, match):
    """The finding: unknown selector parameters and `n_clusters: "abc"` passed; now each selector's own
    validation runs where a profile is adopted, and the message names the params key."""
    (tmp_path / "profiles").mkdir()
    profile = BASE.replace("selectors: {random: {}}", f"selectors: {{random: {{}}, {entry[1:-1]}}}")
    (tmp_path / "profiles" / "mine.yaml").write_text(profile, encoding="utf-8")
    target = tmp_path / "params.yaml"
    assert main(["profile", "use", "mine", "--profiles", str(tmp_path / "profiles"), "--params", str(target)]) == 1
    assert not target.exists()
    with pytest.raises(DataError, match=match) as e:
        from mdaq.selectors import check_selectors

        params = load_params(tmp_path / "profiles" / "mine.yaml")
        check_selectors(params.methods, params.selectors, "mine.yaml")
    assert e.value.field == field and "mine.yaml" in str(e.value)


def test_profile_use_refuses_unregistered_methods_and_path_names(tmp_path, capsys):
    (tmp_path / "profiles").mkdir()
    bad = BASE.replace("[random]", "[random, nope]").replace("{random: {}}", "{random: {}, nope: {}}")
    (tmp_path / "profiles" / "mine.yaml").write_text(bad, encoding="utf-8")
    args = ["--profiles", str(tmp_path / "profiles"), "--params", str(tmp_path / "params.yaml")]
    assert main(["profile", "use", "mine", *args]) == 1
    assert "field 'methods[1]': 'nope' is not a registered method" in capsys.readouterr().err
    assert main(["profile", "use", "../profiles/mine", *args]) == 1
    assert "profile name '../profiles/mine'" in capsys.readouterr().err
    assert not (tmp_path / "params.yaml").exists()


def test_run_hash_ignores_the_qsm_eval_cap(tmp_path):
    """`prepare.qsm_eval_max` feeds only the QSM evaluation: a run's params hash (the leaderboard's stale check)
    must not move with it, and must equal the hash of the prepare section without it (the runs made before it)."""
    import hashlib
    import json

    from mdaq.provenance import run_sections, run_sha

    a = load_params(_write(tmp_path, BASE))
    b = load_params(_write(tmp_path, BASE + "prepare: {qsm_eval_max: 0}\n"))
    c = load_params(_write(tmp_path, BASE + "prepare: {max_heldout: 7}\n"))
    assert section_sha(a, "prepare") != section_sha(b, "prepare")  # the prepare stage does depend on it
    assert run_sha(a, "random") == run_sha(b, "random") != run_sha(c, "random")
    raw = dataclasses.asdict(a)
    raw["prepare"].pop("qsm_eval_max")
    picked = {name: raw[name] if "." not in name else raw["selectors"]["random"] for name in run_sections("random")}
    expect = hashlib.sha256(json.dumps(picked, sort_keys=True, default=str).encode()).hexdigest()[:12]
    assert run_sha(a, "random") == expect


def test_run_hash_and_reuse_ignore_a_selector_setting_at_its_implicit_default(tmp_path):
    """`engine: auto` (added to mdaq_das, car and kmeans_diverse with the value every earlier run used) leaves a
    run's params hash and a method card's reuse claim as they were; another engine changes both."""
    from mdaq.provenance import run_sha
    from mdaq.submissions.recipe import reuse_source

    das = "n_quality_ratio: 6, n_diversity_ratio: 1, n_clusters: budget"
    text = BASE.replace("methods: [random]", "methods: [mdaq_das]").replace("{random: {}}", f"{{mdaq_das: {{{das}}}}}")
    before = load_params(_write(tmp_path, text))
    auto = load_params(_write(tmp_path, text.replace(das, das + ", engine: auto")))
    faiss = load_params(_write(tmp_path, text.replace(das, das + ", engine: faiss")))
    assert run_sha(before, "mdaq_das") == run_sha(auto, "mdaq_das") != run_sha(faiss, "mdaq_das")
    card = {"selector": {"method": "mdaq_das", "version": "2", "seed": 0, "params": before.selectors["mdaq_das"]}}
    assert reuse_source("sub.x", card, auto) == ("mdaq_das", 0) and reuse_source("sub.x", card, faiss) is None
