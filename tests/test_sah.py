"""SAH curves: points from the sah stage, the main grid and the whole-pool run, and their figure."""

from __future__ import annotations

import pytest

from mdaq.io import write_json
from mdaq.reporting.sah import plot_sah, sah_table


def _m(**kw):
    return {"expert_pref_acc_se": 0.06, "n": 60, **kw}


def test_sah_table_joins_three_sources_and_plots(tmp_path):
    runs, sah = tmp_path / "runs", tmp_path / "sah"
    for lang in ("de", "ja"):
        write_json(runs / "full" / lang / "s0" / "metrics.json", _m(n_selected=120, expert_pref_acc=0.62, ref_nll=2.2))
        write_json(runs / "full" / lang / "s0" / "train.json", {"n_steps": 15})
        for m, acc in (("random", 0.55), ("mdaq_das", 0.6)):
            write_json(runs / m / lang / "s0" / "metrics.json", _m(n_selected=30, expert_pref_acc=acc, ref_nll=2.3))
            write_json(runs / m / lang / "s1" / "metrics.json", _m(n_selected=30, expert_pref_acc=0.1, ref_nll=9))
            write_json(
                sah / m / "60" / lang / "metrics.json",
                _m(size=60, expert_pref_acc=acc + 0.01, ref_nll=2.25, optimizer_steps=8),
            )
    write_json(sah / "random" / "90" / "de" / "metrics.json", _m(size=90, expert_pref_acc=0.9, ref_nll=1.0))  # stale
    table = sah_table(runs, sah, ["random", "mdaq_das"], ["de", "ja"], sah_methods=["random", "mdaq_das"], sizes=[60])
    assert len(table) == 2 * 2 * 3 and 90 not in set(table["size"])  # only the current params' sizes are read
    only_random = sah_table(runs, sah, ["random", "mdaq_das"], ["de", "ja"], sah_methods=["random"], sizes=[60])
    assert 60 not in set(only_random.loc[only_random.method == "mdaq_das", "size"])  # main grid + full only
    das = table[(table.method == "mdaq_das") & (table.lang == "de")]
    assert list(das["size"]) == [30, 60, 120] and list(das["source"]) == [
        "main grid",
        "sah stage",
        "full (whole pool)",
    ]
    assert das["expert_pref_acc"].tolist() == pytest.approx([0.6, 0.61, 0.62])  # seed 0's runs, not seed 1's
    assert das["optimizer_steps"].tolist()[1:] == [8, 15]  # steps beside every point (main grid: from train.json)
    out = plot_sah(table, tmp_path / "sah.png")
    assert out.stat().st_size > 10_000


def test_sah_table_without_points_is_empty_but_plots(tmp_path):
    table = sah_table(tmp_path / "runs", tmp_path / "sah", ["random"], ["de"])
    assert table.empty
    assert plot_sah(table, tmp_path / "sah.png").is_file()
