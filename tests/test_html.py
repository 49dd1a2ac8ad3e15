"""The static HTML leaderboard: self-contained, and a real headless Chromium renders, filters and sorts its table."""

from __future__ import annotations

import re
import shutil
import subprocess

import pandas as pd
import pytest

from mdaq.reporting.html import page_data, render_html

BROWSERS = ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome")


def _browser() -> str | None:
    return next((b for b in map(shutil.which, BROWSERS) if b), None)


def _long() -> pd.DataFrame:
    rows = []
    vals = {"random": (0.55, 2.3), "full": (0.60, 2.1), "mdaq_das": (0.65, 2.2)}
    for m, (acc, nll) in vals.items():
        for lang, shift in (("de", 0.0), ("ja", -0.1), ("all", -0.05)):
            rows.append((m, lang, "expert_pref_acc", acc + shift, acc + shift - 0.05, acc + shift + 0.05))
            rows.append((m, lang, "ref_nll", nll - shift, None, None))
    return pd.DataFrame(rows, columns=["method", "language", "metric", "value", "ci_low", "ci_high"])


def test_page_is_self_contained(tmp_path):
    png = tmp_path / "fig.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * 64)
    page = render_html(_long(), title="t <b>", meta={"profile": "smoke"}, note="a & b", figures=[png, tmp_path / "no"])
    assert "data:image/png;base64," in page and "t &lt;b&gt;" in page and "a &amp; b" in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)  # no CDN, no remote asset
    assert "<link" not in page and "<script src" not in page
    data = page_data(_long())
    assert data["languages"] == ["all", "de", "ja"] and data["default_sort"] == "expert_pref_acc"


def _dom(browser: str, page, fragment: str) -> str:
    url = page.resolve().as_uri() + fragment
    out = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return out.stdout


def _rows(dom: str) -> list[str]:
    return re.findall(r'<tr data-method="([a-z_]+)"', dom)


@pytest.mark.skipif(_browser() is None, reason="no Chromium: scripts/setup.sh installs chromium-headless-shell")
def test_chromium_renders_sorts_and_filters_the_table(tmp_path):
    page = tmp_path / "leaderboard.html"
    page.write_text(render_html(_long(), title="t", meta={}), encoding="utf-8")
    browser = _browser()
    dom = _dom(browser, page, "")
    assert _rows(dom) == ["mdaq_das", "full", "random"]  # default: all languages, best accuracy first
    assert "3 methods, language: all" in dom and len(re.findall(r"<th[ >]", dom)) == 3  # method + two metrics
    assert re.search(r'data-metric="expert_pref_acc">0\.600<small> \[0\.550, 0\.650\]</small>', dom)
    dom = _dom(browser, page, "#lang=de&sort=ref_nll&dir=asc")
    assert _rows(dom) == ["full", "mdaq_das", "random"] and "language: de" in dom
    assert 'class="sorted-asc"' in dom
    dom = _dom(browser, page, "#lang=ja&sort=method&dir=desc")
    assert _rows(dom) == ["random", "mdaq_das", "full"]
    assert 'data-metric="expert_pref_acc">0.450' in _dom(browser, page, "#lang=ja")  # random's ja value


def _wide() -> pd.DataFrame:
    """The wide table's per-row information for :func:`_long`'s rows: a built-in, a verified and a community row."""
    info = {
        "full": ("builtin", "https://arxiv.org/abs/2509.15549", "mdaq/selectors/baselines.py", None),
        "mdaq_das": ("verified", "https://arxiv.org/abs/2509.15549", "mdaq/selectors/mdaq_das.py", 0.05),
        "random": ("community", "javascript:alert(1)", "https://example.org/random", -0.05),
    }
    rows = []
    for m, (tier, paper, code, d) in info.items():
        for lang in ("de", "ja", "all"):
            lo, hi = (None, None) if d is None else (d - 0.02, d + 0.03)
            rows.append((m, lang, tier, "ab" * 32, paper, code, d, lo, hi, 12.5 if tier == "community" else None))
    cols = ["method", "lang", "tier", "pool_hash", "paper", "code", "d_acc_vs_full", "d_acc_lo_vs_full"]
    return pd.DataFrame(rows, columns=[*cols, "d_acc_hi_vs_full", "selection_s"])


def test_page_data_carries_tiers_pool_links_and_the_difference_against_full():
    data = page_data(_long(), _wide())
    assert data["tiers"] == ["builtin", "verified", "community"] and data["has_info"]
    assert data["metrics"][-2:] == ["d_acc_vs_full", "selection_s"]
    row = next(r for r in data["rows"] if (r["method"], r["language"]) == ("mdaq_das", "all"))
    assert row["tier"] == "verified" and row["pool_hash"] == "ab" * 32
    assert row["values"]["d_acc_vs_full"] == 0.05 and row["intervals"]["d_acc_vs_full"] == pytest.approx([0.03, 0.08])
    assert row["links"] == {"paper": "https://arxiv.org/abs/2509.15549", "code": "mdaq/selectors/mdaq_das.py"}


@pytest.mark.skipif(_browser() is None, reason="no Chromium: scripts/setup.sh installs chromium-headless-shell")
def test_chromium_filters_by_tier_and_shows_pool_links_and_the_difference(tmp_path):
    page = tmp_path / "leaderboard.html"
    page.write_text(render_html(_long(), title="t", meta={}, wide_df=_wide()), encoding="utf-8")
    browser = _browser()
    dom = _dom(browser, page, "")
    assert _rows(dom) == ["mdaq_das", "full", "random"] and "tier: all" in dom
    assert re.search(r'data-metric="d_acc_vs_full">\+0\.050<small> \[\+0\.030, \+0\.080\]</small>', dom)
    assert '<code title="' + "ab" * 32 + '">abababababab</code>' in dom
    assert '<a href="https://arxiv.org/abs/2509.15549" rel="noopener">paper</a>' in dom
    assert '<a href="../mdaq/selectors/mdaq_das.py" rel="noopener">code</a>' in dom  # a path of this repository
    assert "javascript:" not in dom.split("<tbody>")[1].split("</tbody>")[0]  # not http(s), not a path: no link
    dom = _dom(browser, page, "#tier=community")
    assert _rows(dom) == ["random"] and "1 methods, language: all, tier: community" in dom
    assert 'data-metric="selection_s">12.5</td>' in dom  # the card's selection compute
    dom = _dom(browser, page, "#tier=verified&lang=de&sort=d_acc_vs_full&dir=asc")
    assert _rows(dom) == ["mdaq_das"] and '<button data-tier="verified" class="active">' in dom
    dom = _dom(browser, page, "#tier=all&sort=d_acc_vs_full&dir=asc")
    assert _rows(dom) == ["random", "mdaq_das", "full"]  # no difference (full itself) sorts last
