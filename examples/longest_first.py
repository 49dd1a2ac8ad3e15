"""An outside-style submission (docs/submitting.md): select from a profile's frozen pool with no mdaq code at all, and
write the submission folder, ids and method card.

The rule: per language, the candidates with the longest response (``output``, in characters) first, ties broken by
id, as many as the manifest's ``rules.per_language`` asks for. A length baseline: longer responses are more often the
expert-revised ones in MIDB, which is why the leaderboard needs it. It wrote ``submissions/longest_first/``:

    python examples/longest_first.py --pool artifacts/pools/default --out submissions/longest_first \
        --code-commit <the commit of this script>

Then ``python -m mdaq submit validate submissions/longest_first``. Only the standard library is used, as in a
submitter's own code base.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

CARD = """\
# Method card of an outside-style example submission (examples/longest_first.py wrote it)
name: longest_first
description: The longest responses first (characters of `output`, ties by id), an ids-only outside example.
authors: ["mdaq contributors (example submission)"]
paper: ""
code: examples/longest_first.py
code_commit: {commit}
profile: {profile}
pool_hash: {pool_hash}
mode: per_language
compute:
  seconds: {seconds}
  hardware: "{hardware}"
features: []
uses_heldout: false
"""


def longest_first(rows: list[dict], n: int) -> list[str]:
    """The ids of the ``n`` rows with the longest ``output``, longest first, ties by id."""
    return [r["id"] for r in sorted(rows, key=lambda r: (-len(r["output"]), r["id"]))[:n]]


def cpu_model() -> str:
    """The CPU's model name (Linux), else what :mod:`platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pool", default="artifacts/pools/default", help="a frozen pool: manifest.json, <lang>.jsonl")
    p.add_argument("--out", default="submissions/longest_first")
    p.add_argument("--code-commit", required=True, help="the commit of this script")
    p.add_argument("--hardware", default=None, help="default: this machine's CPU")
    args = p.parse_args()
    pool, out = Path(args.pool), Path(args.out)
    manifest = json.loads((pool / "manifest.json").read_text(encoding="utf-8"))
    start = time.perf_counter()
    ids = {}
    for lang, n in manifest["rules"]["per_language"].items():
        with open(pool / f"{lang}.jsonl", encoding="utf-8") as f:
            ids[lang] = longest_first([json.loads(line) for line in f], n)
    seconds = time.perf_counter() - start
    (out / "selection").mkdir(parents=True, exist_ok=True)
    for lang, lang_ids in ids.items():
        (out / "selection" / f"{lang}.txt").write_text("".join(i + "\n" for i in lang_ids), encoding="utf-8")
    card = CARD.format(
        commit=args.code_commit,
        profile=manifest["profile"],
        pool_hash=manifest["pool_hash"],
        seconds=round(seconds, 3),
        hardware=args.hardware or cpu_model(),
    )
    (out / "method.yaml").write_text(card, encoding="utf-8")
    print(json.dumps({"out": str(out), "n": {lang: len(v) for lang, v in ids.items()}}))


if __name__ == "__main__":
    main()
