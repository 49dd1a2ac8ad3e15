#!/usr/bin/env bash
# Run (or finish) a study: a profile other than `default`, whose results are committed in studies/PROFILE/.
#   bash scripts/study.sh study            # e.g. the powered study of docs/study-power.md
#   MDAQ_STUDY_WORK=/scratch/w bash scripts/study.sh study
# It runs in a git worktree of HEAD (default: ../<repo>-study-PROFILE), so this checkout stays on the default profile
# and stays usable. It restores studies/PROFILE/ there (runs already committed are not trained again), runs
# `dvc repro`, and saves the snapshot back into studies/PROFILE/ after every finished stage and on exit, however it
# ends: commit studies/PROFILE/ to keep a sitting's runs. Extra arguments go to `dvc repro`. Offline: set
# MDAQ_DATA_MIRROR as for scripts/run.sh. Docs: mdaq/pipeline/studies.py, docs/study-power.md.
set -euo pipefail
profile="${1:?usage: bash scripts/study.sh PROFILE [dvc repro args]}"
shift
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
[ -f "profiles/$profile.yaml" ] || { echo "study.sh: no profiles/$profile.yaml" >&2; exit 2; }
[ "$profile" != default ] || { echo "study.sh: the default profile runs with scripts/run.sh" >&2; exit 2; }
bash scripts/setup.sh
export PATH="$repo/.venv/bin:$PATH" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
work="${MDAQ_STUDY_WORK:-$(dirname "$repo")/$(basename "$repo")-study-$profile}"
if [ -n "$(git status --porcelain --untracked-files=no -- mdaq notebooks dvc.yaml profiles)" ]; then
  echo "study.sh: warning: uncommitted changes to the code are not in the study (it runs HEAD)" >&2
fi
if [ -d "$work" ]; then   # a later sitting on this machine: HEAD's files, the ignored artifacts/ kept
  git -C "$work" reset -q --hard   # its params.yaml, dvc.lock, results/ were saved into studies/ on exit
  git -C "$work" checkout -q --detach "$(git rev-parse HEAD)"
else
  git worktree add -q --detach "$work" HEAD
fi
cd "$work"
dvc cache dir --local "$repo/.dvc/cache"   # one DVC cache: the model assets and the data are not built twice
export PYTHONPATH="$work"                  # the worktree's mdaq, not the editable install of the checkout
python -m mdaq profile use "$profile"
if [ -d "$repo/studies/$profile" ]; then
  python -m mdaq study restore "$profile" --work . --repo "$repo"
else   # a first sitting: the lock starts empty, so it (and the snapshot) records only what this study's stages ran
  printf "schema: '2.0'\nstages: {}\n" > dvc.lock
  echo "studies/$profile: no snapshot yet, the study starts afresh"
fi
python -m mdaq data fetch --out data/midb
python -m mdaq profile prune-lock
save() { python -m mdaq study save "$profile" --work . --repo "$repo"; }
trap save EXIT
# save after every stage DVC finishes: `dvc repro` of the whole graph, then a save, repeated, would rerun nothing;
# a watcher that saves when dvc.lock changes keeps a killed sitting's finished runs
( last=""; while sleep 30; do
    now="$(stat -c %Y dvc.lock 2>/dev/null || true)"
    if [ -n "$now" ] && [ "$now" != "$last" ] && save >/dev/null 2>&1; then last="$now"; fi
  done ) &
watcher=$!
trap 'kill $watcher 2>/dev/null || true; save' EXIT
dvc repro "$@"
python -m mdaq leaderboard
