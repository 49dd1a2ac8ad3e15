"""Executed stage notebooks, published where a reader sees them without running anything.

The pipeline executes each stage notebook per method and language into ``notebooks/_runs/`` (git-ignored: dozens of
copies). :func:`publish_notebooks` keeps one executed copy per stage type, outputs and figures included, under a
committed folder (``results/notebooks/``, refreshed by the ``leaderboard`` stage), trims long log streams so the
folder stays small, and writes an index. GitHub renders them as they are.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

STREAM_CHARS = 1500  # a stage log (progress bars, warnings) is cut to its last characters


def _stage_of(name: str) -> str:
    """``20_select@mdaq_das-de.ipynb`` -> ``20_select``."""
    return re.split(r"[@.]", name, maxsplit=1)[0]


def pick_runs(runs_dir: str | Path, prefer: Sequence[str] = ("mdaq_das",)) -> dict[str, Path]:
    """One executed notebook per stage type: the first (by name) whose name mentions a preferred method, else
    the first by name."""
    runs = sorted(Path(runs_dir).glob("*.ipynb"))
    out: dict[str, Path] = {}
    for stage in sorted({_stage_of(p.name) for p in runs}):
        cands = [p for p in runs if _stage_of(p.name) == stage]
        out[stage] = next((p for p in cands if any(m in p.name for m in prefer)), cands[0])
    return out


def _trim(nb: dict[str, Any]) -> dict[str, Any]:
    for cell in nb.get("cells", []):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                text = "".join(output.get("text", ""))
                if len(text) > STREAM_CHARS:
                    output["text"] = (
                        f"[... {len(text) - STREAM_CHARS} characters of log cut ...]\n" + text[-STREAM_CHARS:]
                    )
    return nb


def publish_notebooks(
    runs_dir: str | Path,
    out_dir: str | Path,
    *,
    prefer: Sequence[str] = ("mdaq_das",),
    skip: Sequence[str] = (),
    stage_notebooks: Sequence[Path] = (),
) -> list[Path]:
    """Copy :func:`pick_runs`' notebooks (minus stage types in ``skip``) to ``out_dir`` as ``<stage>.ipynb`` with
    trimmed logs, plus ``README.md`` naming the run each one comes from, and why each of ``stage_notebooks`` (the
    pipeline's notebooks, ``notebooks/*.ipynb``) that is not there is missing. ``out_dir`` is replaced as a whole."""
    picked = {s: p for s, p in pick_runs(runs_dir, prefer).items() if s not in skip}
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        lines = [
            "# Executed stage notebooks (default profile)",
            "",
            "One executed copy per stage type, written by the `leaderboard` stage (`mdaq.reporting.notebooks`);",
            "logs trimmed. Each comes from `notebooks/_runs/` of the last `dvc repro`.",
            "",
            "| stage | executed run |",
            "|---|---|",
        ]
        for stage, src in picked.items():
            nb = _trim(json.loads(src.read_text(encoding="utf-8")))
            (work / f"{stage}.ipynb").write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
            lines.append(f"| [{stage}]({stage}.ipynb) | `{src.name}` |")
        for stage in sorted(s for s in map(_stage_of, (p.name for p in stage_notebooks)) if s not in picked):
            why = (
                "this stage's own notebook: it writes this folder, so it is still running (its outputs: the results"
                " and figures it writes)"
                if stage in skip
                else "not executed by this profile (e.g. `60_sah` runs only where `sah.sizes` is set: cpu_full, paper)"
            )
            lines.append(f"| {stage} | {why} |")
        (work / "README.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        work.rename(out_dir)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return sorted(out_dir.glob("*.ipynb"))
