"""The static HTML leaderboard: one self-contained file (no CDN, no network), a sortable table per language, the
figures inlined as data URIs. State lives in the URL hash (``#lang=de&sort=expert_pref_acc&dir=asc``), so a link
opens a given view and a headless browser test can check one."""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

LABELS = {
    "expert_pref_acc": "expert-pref. acc. ↑",
    "ref_nll": "NLL revised ↓",
    "share_revised": "share revised",
    "cluster_coverage": "coverage",
    "mean_pairwise_distance": "diversity",
    "mean_quality": "mean QSM score",
    "len_mean": "mean length",
    "share_target_lang": "answers in target lang.",
    "win_rate_alpaca_eval": "AlpacaEval win %",
    "win_rate_mt_bench_r1": "MT-Bench R1 win %",
    "win_rate_mt_bench_r2": "MT-Bench R2 win %",
}

_CSS = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1200px;color:#222;padding:0 1rem}
h1{font-size:1.5rem}.meta{color:#666;font-size:.9rem}
nav button{margin:.2rem;padding:.3rem .8rem;border:1px solid #999;background:#fff;border-radius:4px;cursor:pointer}
nav button.active{background:#234;color:#fff}
table{border-collapse:collapse;width:100%;margin:1rem 0;font-size:.9rem}
th,td{padding:.35rem .5rem;border-bottom:1px solid #ddd;text-align:right}
th:first-child,td:first-child{text-align:left}th{cursor:pointer;background:#f4f4f4;user-select:none}
th.sorted-asc::after{content:" ▲"}th.sorted-desc::after{content:" ▼"}
td small{color:#888}figure{margin:1.5rem 0}img{max-width:100%}.note{font-size:.9rem;color:#444}
"""

_JS = """
const DATA = JSON.parse(document.getElementById('data').textContent);
const LOWER_BETTER = new Set(DATA.lower_is_better);
function state() {
  const h = new URLSearchParams(location.hash.slice(1));
  const lang = DATA.languages.includes(h.get('lang')) ? h.get('lang') : 'all';
  const sort = DATA.metrics.includes(h.get('sort')) || h.get('sort') === 'method' ? h.get('sort') : DATA.default_sort;
  const dir = h.get('dir') === 'asc' || h.get('dir') === 'desc' ? h.get('dir')
            : (LOWER_BETTER.has(sort) || sort === 'method' ? 'asc' : 'desc');
  return {lang, sort, dir};
}
function fmt(v, m) {
  if (v === null || v === undefined) return '–';
  return m.startsWith('win_rate') || m === 'len_mean' ? v.toFixed(1) : v.toFixed(3);
}
function render() {
  const s = state();
  document.querySelectorAll('nav button').forEach(b => b.classList.toggle('active', b.dataset.lang === s.lang));
  const rows = DATA.rows.filter(r => r.language === s.lang);
  const key = r => s.sort === 'method' ? r.method : (r.values[s.sort] ?? null);
  rows.sort((a, b) => {
    const x = key(a), y = key(b);
    if (x === null && y === null) return a.method < b.method ? -1 : 1;
    if (x === null) return 1;
    if (y === null) return -1;
    const c = x < y ? -1 : x > y ? 1 : (a.method < b.method ? -1 : 1);
    return s.dir === 'asc' ? c : -c;
  });
  const head = document.querySelector('#board thead tr');
  head.innerHTML = '';
  for (const m of ['method', ...DATA.metrics]) {
    const th = document.createElement('th');
    th.textContent = m === 'method' ? 'method' : DATA.labels[m];
    th.dataset.metric = m;
    if (m === s.sort) th.className = 'sorted-' + s.dir;
    th.onclick = () => {
      const natural = LOWER_BETTER.has(m) || m === 'method' ? 'asc' : 'desc';
      const dir = m === s.sort ? (s.dir === 'asc' ? 'desc' : 'asc') : natural;
      location.hash = `lang=${s.lang}&sort=${m}&dir=${dir}`;
    };
    head.appendChild(th);
  }
  const body = document.querySelector('#board tbody');
  body.innerHTML = '';
  for (const r of rows) {
    const tr = document.createElement('tr');
    tr.dataset.method = r.method;
    const td0 = document.createElement('td');
    td0.textContent = r.method;
    tr.appendChild(td0);
    for (const m of DATA.metrics) {
      const td = document.createElement('td');
      td.dataset.metric = m;
      td.textContent = fmt(r.values[m], m);
      const ci = r.intervals[m];
      if (ci) {
        const sm = document.createElement('small');
        sm.textContent = ` [${fmt(ci[0], m)}, ${fmt(ci[1], m)}]`;
        td.appendChild(sm);
      }
      tr.appendChild(td);
    }
    body.appendChild(tr);
  }
  document.getElementById('shown').textContent = `${rows.length} methods, language: ${s.lang}`;
}
document.querySelectorAll('nav button').forEach(b => b.onclick = () => {
  const s = state();
  location.hash = `lang=${b.dataset.lang}&sort=${s.sort}&dir=${s.dir}`;
});
window.addEventListener('hashchange', render);
render();
"""


def _clean(x: Any) -> Any:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else x


def page_data(long_df: Any) -> dict[str, Any]:
    """The JSON the page renders: per (method, language) the metric values and 95% intervals."""
    metrics = [m for m in LABELS if m in set(long_df["metric"])]
    languages = ["all", *sorted(lang for lang in set(long_df["language"]) if lang != "all")]
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for r in long_df.to_dict("records"):
        row = rows.setdefault(
            (r["method"], r["language"]),
            {"method": r["method"], "language": r["language"], "values": {}, "intervals": {}},
        )
        row["values"][r["metric"]] = _clean(float(r["value"]))
        lo, hi = _clean(r.get("ci_low")), _clean(r.get("ci_high"))
        if lo is not None and hi is not None:
            row["intervals"][r["metric"]] = [float(lo), float(hi)]
    sort = "win_rate_alpaca_eval" if "win_rate_alpaca_eval" in metrics else "expert_pref_acc"
    return {
        "metrics": metrics,
        "labels": {m: LABELS[m] for m in metrics},
        "languages": languages,
        "rows": list(rows.values()),
        "default_sort": sort,
        "lower_is_better": ["ref_nll"],
    }


def render_html(
    long_df: Any, *, title: str, meta: Mapping[str, Any], note: str = "", figures: Sequence[str | Path] = ()
) -> str:
    """A self-contained HTML page for the long-format leaderboard (:func:`mdaq.reporting.leaderboard.to_long`).

    Parameters
    ----------
    long_df : pandas.DataFrame
        Rows of (method, language, metric, value, ci_low, ci_high, ...).
    title : str
    meta : mapping
        Shown under the title (profile, git sha, date, judge).
    note : str
        Plain text under the table (what the metrics mean, which numbers are the paper's).
    figures : sequence of paths
        PNG files, inlined as ``data:`` URIs (the page needs no other file); missing files are skipped.
    """
    data = page_data(long_df)
    langs = "".join(f'<button data-lang="{html.escape(x)}">{html.escape(x)}</button>' for x in data["languages"])
    meta_html = " · ".join(f"{html.escape(str(k))}: <code>{html.escape(str(v))}</code>" for k, v in meta.items())
    figs = []
    for f in map(Path, figures):
        if f.is_file():
            b64 = base64.b64encode(f.read_bytes()).decode()
            figs.append(
                f'<figure><img alt="{html.escape(f.stem)}" src="data:image/png;base64,{b64}">'
                f"<figcaption>{html.escape(f.name)}</figcaption></figure>"
            )
    payload = json.dumps(data, ensure_ascii=False).replace("</", "<\\/")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title><style>{_CSS}</style></head>
<body><h1>{html.escape(title)}</h1><p class="meta">{meta_html}</p>
<nav aria-label="language">{langs}</nav><p class="meta" id="shown"></p>
<table id="board"><thead><tr></tr></thead><tbody></tbody></table>
<p class="note">{html.escape(note)}</p>
{"".join(figs)}
<script id="data" type="application/json">{payload}</script>
<script>{_JS}</script></body></html>
"""
