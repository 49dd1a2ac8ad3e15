"""How long the pipeline took, per stage type, from the executed notebooks' papermill metadata.

    python scripts/stage_times.py [notebooks/_runs] [--since 2026-11-26T17:00]

Prints one row per stage type (count, total minutes, mean seconds, the part spent before the first code cell ran:
kernel start and imports), and the wall-clock span from the first notebook's start to the last one's end. Only
notebooks that started at or after ``--since`` count, so a partial rerun can be told apart from a cold run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from collections import defaultdict
from pathlib import Path


def _t(s: str) -> dt.datetime:
    return dt.datetime.fromisoformat(s)


def stage_times(runs: Path, since: dt.datetime | None = None) -> tuple[dict[str, dict[str, float]], float]:
    """Per stage type: ``n``, ``minutes``, ``mean_s``, ``startup_s`` (mean time before the first cell); and the
    wall-clock span in minutes."""
    per: dict[str, list[tuple[float, float]]] = defaultdict(list)
    first, last = None, None
    for nb_path in sorted(runs.glob("*.ipynb")):
        meta = json.loads(nb_path.read_text(encoding="utf-8"))["metadata"].get("papermill", {})
        if not meta.get("start_time") or not meta.get("end_time"):
            continue
        start, end = _t(meta["start_time"]), _t(meta["end_time"])
        if since is not None and start < since:
            continue
        cells = [c["metadata"].get("papermill", {}) for c in json.loads(nb_path.read_text())["cells"]]
        starts = [_t(c["start_time"]) for c in cells if c.get("start_time")]
        startup = (min(starts) - start).total_seconds() if starts else 0.0
        kind = nb_path.stem.split("@")[0]
        per[kind].append(((end - start).total_seconds(), startup))
        first = start if first is None or start < first else first
        last = end if last is None or end > last else last
    table = {
        k: {
            "n": len(v),
            "minutes": sum(d for d, _ in v) / 60,
            "mean_s": sum(d for d, _ in v) / len(v),
            "startup_s": sum(s for _, s in v) / len(v),
        }
        for k, v in sorted(per.items())
    }
    span = (last - first).total_seconds() / 60 if first and last else 0.0
    return table, span


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="?", default="notebooks/_runs")
    ap.add_argument("--since", default=None, help="ISO time (UTC if no offset); older notebooks are ignored")
    args = ap.parse_args()
    since = None
    if args.since:
        since = _t(args.since)
        since = since if since.tzinfo else since.replace(tzinfo=dt.UTC)
    table, span = stage_times(Path(args.runs), since)
    print(f"{'stage':18s} {'n':>4s} {'minutes':>8s} {'mean s':>7s} {'startup s':>9s}")
    for kind, row in table.items():
        print(f"{kind:18s} {row['n']:4d} {row['minutes']:8.1f} {row['mean_s']:7.1f} {row['startup_s']:9.1f}")
    total = sum(r["minutes"] for r in table.values())
    print(f"{'sum':18s} {sum(r['n'] for r in table.values()):4d} {total:8.1f}")
    print(f"wall clock, first notebook start to last end: {span:.1f} min")


if __name__ == "__main__":
    main()
