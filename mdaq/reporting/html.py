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
    "d_acc_vs_full": "Δ acc. vs full",
    "selection_s": "selection s",
}
WIDE_METRICS = ("d_acc_vs_full", "selection_s")  # from the wide table: the paired difference and the card's compute
TIER_ORDER = ("builtin", "verified", "community")

_CSS = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1200px;color:#222;padding:0 1rem}
h1{font-size:1.5rem}.meta{color:#666;font-size:.9rem}
nav button{margin:.2rem;padding:.3rem .8rem;border:1px solid #999;background:#fff;border-radius:4px;cursor:pointer}
nav button.active{background:#234;color:#fff}
table{border-collapse:collapse;width:100%;margin:1rem 0;font-size:.9rem}
th,td{padding:.35rem .5rem;border-bottom:1px solid #ddd;text-align:right}
th:first-child,td:first-child{text-align:left}th{cursor:pointer;background:#f4f4f4;user-select:none}
th.sorted-asc::after{content:" ▲"}th.sorted-desc::after{content:" ▼"}
td small{color:#888}td.tier.verified{color:#175}td.tier.community{color:#a60}td.pool code{font-size:.8rem}
figure{margin:1.5rem 0}img{max-width:100%}.note{font-size:.9rem;color:#444}
"""

_JS = """
const DATA = JSON.parse(document.getElementById('data').textContent);
const LOWER_BETTER = new Set(DATA.lower_is_better);
const TIERS = ['all', ...DATA.tiers];
function state() {
  const h = new URLSearchParams(location.hash.slice(1));
  const lang = DATA.languages.includes(h.get('lang')) ? h.get('lang') : 'all';
  const tier = TIERS.includes(h.get('tier')) ? h.get('tier') : 'all';
  const sort = DATA.metrics.includes(h.get('sort')) || h.get('sort') === 'method' ? h.get('sort') : DATA.default_sort;
  const dir = h.get('dir') === 'asc' || h.get('dir') === 'desc' ? h.get('dir')
            : (LOWER_BETTER.has(sort) || sort === 'method' ? 'asc' : 'desc');
  return {lang, tier, sort, dir};
}
function go(change) {
  const s = Object.assign(state(), change);
  location.hash = `lang=${s.lang}&tier=${s.tier}&sort=${s.sort}&dir=${s.dir}`;
}
function fmt(v, m) {
  if (v === null || v === undefined) return '–';
  if (m.startsWith('d_acc')) return (v >= 0 ? '+' : '') + v.toFixed(3);
  if (m === 'selection_s') return String(Number(v.toPrecision(3)));  // 0.002, 14.5, 312
  return m.startsWith('win_rate') || m === 'len_mean' ? v.toFixed(1) : v.toFixed(3);
}
function link(text, url) {
  // an http(s) URL, or a path of this repository (the page lives in results/); anything else is not linked
  const web = /^https?:\\/\\//.test(url);
  if (!url || (!web && /^[a-z][a-z0-9+.-]*:/i.test(url))) return null;
  const a = document.createElement('a');
  a.textContent = text;
  a.href = web ? url : DATA.repo_root + url;
  a.rel = 'noopener';
  return a;
}
function infoCells(tr, r) {
  const pool = document.createElement('td');
  pool.className = 'pool';
  const code = document.createElement('code');
  code.textContent = (r.pool_hash || '–').slice(0, 12);
  code.title = r.pool_hash || '';
  pool.appendChild(code);
  const card = document.createElement('td');
  card.className = 'card';
  const links = r.links || {};
  for (const [text, url] of [['paper', links.paper], ['code', links.code]]) {
    const a = link(text, url);
    if (a) { if (card.childNodes.length) card.appendChild(document.createTextNode(' · ')); card.appendChild(a); }
  }
  tr.appendChild(pool);
  tr.appendChild(card);
}
function render() {
  const s = state();
  document.querySelectorAll('nav.langs button').forEach(b => b.classList.toggle('active', b.dataset.lang === s.lang));
  document.querySelectorAll('nav.tiers button').forEach(b => b.classList.toggle('active', b.dataset.tier === s.tier));
  const rows = DATA.rows.filter(r => r.language === s.lang && (s.tier === 'all' || r.tier === s.tier));
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
  const info = DATA.has_info ? ['tier'] : [];
  for (const m of ['method', ...info, ...DATA.metrics]) {
    const th = document.createElement('th');
    th.textContent = m === 'method' || m === 'tier' ? m : DATA.labels[m];
    th.dataset.metric = m;
    if (m === s.sort) th.className = 'sorted-' + s.dir;
    if (m !== 'tier') th.onclick = () => {
      const natural = LOWER_BETTER.has(m) || m === 'method' ? 'asc' : 'desc';
      go({sort: m, dir: m === s.sort ? (s.dir === 'asc' ? 'desc' : 'asc') : natural});
    };
    head.appendChild(th);
  }
  if (DATA.has_info) for (const t of ['pool', 'method card']) {
    const th = document.createElement('th');
    th.textContent = t;
    head.appendChild(th);
  }
  const body = document.querySelector('#board tbody');
  body.innerHTML = '';
  for (const r of rows) {
    const tr = document.createElement('tr');
    tr.dataset.method = r.method;
    tr.dataset.tier = r.tier || '';
    const td0 = document.createElement('td');
    td0.textContent = r.method;
    tr.appendChild(td0);
    if (DATA.has_info) {
      const td = document.createElement('td');
      td.className = 'tier ' + (r.tier || '');
      td.textContent = r.tier || '–';
      tr.appendChild(td);
    }
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
    if (DATA.has_info) infoCells(tr, r);
    body.appendChild(tr);
  }
  const tier = DATA.has_info ? `, tier: ${s.tier}` : '';
  document.getElementById('shown').textContent = `${rows.length} methods, language: ${s.lang}${tier}`;
}
document.querySelectorAll('nav.langs button').forEach(b => b.onclick = () => go({lang: b.dataset.lang}));
document.querySelectorAll('nav.tiers button').forEach(b => b.onclick = () => go({tier: b.dataset.tier}));
window.addEventListener('hashchange', render);
render();
"""


def _clean(x: Any) -> Any:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else x


def _number(x: Any) -> float | None:
    try:
        return _clean(float(x))
    except (TypeError, ValueError):
        return None


def _add_wide(rows: dict[tuple[str, str], dict[str, Any]], wide_df: Any) -> None:
    """Per row of the wide table: tier, pool hash, the card's links, the paired difference against ``full`` with
    its 95% interval and Holm-adjusted p, and the selection's compute."""
    for r in wide_df.to_dict("records"):
        row = rows.get((r["method"], r["lang"]))
        if row is None:
            continue
        row.update(tier=str(r.get("tier") or ""), pool_hash=str(r.get("pool_hash") or ""))
        row["links"] = {k: str(r.get(k) or "") if isinstance(r.get(k), str) else "" for k in ("paper", "code")}
        d, lo, hi = (_number(r.get(f"{c}_vs_full")) for c in ("d_acc", "d_acc_lo", "d_acc_hi"))
        row["values"]["d_acc_vs_full"] = d
        if d is not None and lo is not None and hi is not None:
            row["intervals"]["d_acc_vs_full"] = [lo, hi]
        row["p_vs_full"] = _number(r.get("p_acc_holm_vs_full"))
        row["values"]["selection_s"] = _number(r.get("selection_s"))


def page_data(long_df: Any, wide_df: Any = None) -> dict[str, Any]:
    """The JSON the page renders: per (method, language) the metric values and 95% intervals; with the wide table
    (:func:`mdaq.reporting.leaderboard.build_leaderboard`) also each row's tier, pool hash, method-card links,
    paired difference against ``full`` (:data:`WIDE_METRICS`) and the tiers present (the filter)."""
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
    tiers: list[str] = []
    if wide_df is not None:
        _add_wide(rows, wide_df)
        present = {row.get("tier") for row in rows.values()}
        metrics += [m for m in WIDE_METRICS if any(row["values"].get(m) is not None for row in rows.values())]
        tiers = [t for t in TIER_ORDER if t in present]
    sort = "win_rate_alpaca_eval" if "win_rate_alpaca_eval" in metrics else "expert_pref_acc"
    return {
        "metrics": metrics,
        "labels": {m: LABELS[m] for m in metrics},
        "languages": languages,
        "tiers": tiers,
        "has_info": wide_df is not None,
        "repo_root": "../",  # code links are paths of this repository; the page is results/leaderboard.html
        "rows": list(rows.values()),
        "default_sort": sort,
        "lower_is_better": ["ref_nll", "selection_s"],
    }


def render_html(
    long_df: Any,
    *,
    title: str,
    meta: Mapping[str, Any],
    note: str = "",
    figures: Sequence[str | Path] = (),
    wide_df: Any = None,
) -> str:
    """A self-contained HTML page for the long-format leaderboard (:func:`mdaq.reporting.leaderboard.to_long`).

    Parameters
    ----------
    long_df : pandas.DataFrame
        Rows of (method, language, metric, value, ci_low, ci_high, ...).
    wide_df : pandas.DataFrame, optional
        The wide table (one row per method and language): adds a filter by tier and, per row, the tier, the pool
        hash, the method card's paper and code links, the paired difference against ``full`` with its interval and
        the selection's compute (:func:`page_data`).
    title : str
    meta : mapping
        Shown under the title (profile, git sha, date, judge).
    note : str
        Plain text under the table (what the metrics mean, which numbers are the paper's).
    figures : sequence of paths
        PNG files, inlined as ``data:`` URIs (the page needs no other file); missing files are skipped.
    """
    data = page_data(long_df, wide_df)
    langs = "".join(f'<button data-lang="{html.escape(x)}">{html.escape(x)}</button>' for x in data["languages"])
    tiers = "".join(f'<button data-tier="{html.escape(x)}">{html.escape(x)}</button>' for x in ["all", *data["tiers"]])
    tier_nav = f'<nav class="tiers" aria-label="tier">tier: {tiers}</nav>' if data["has_info"] else ""
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
<nav class="langs" aria-label="language">{langs}</nav>{tier_nav}<p class="meta" id="shown"></p>
<table id="board"><thead><tr></tr></thead><tbody></tbody></table>
<p class="note">{html.escape(note)}</p>
{"".join(figs)}
<script id="data" type="application/json">{payload}</script>
<script>{_JS}</script></body></html>
"""
