#!/usr/bin/env bash
# Run (or finish) a study: a profile other than `default`, whose results are committed in studies/PROFILE/.
#   bash scripts/study.sh study            # e.g. the powered study of docs/study-power.md
#   MDAQ_STUDY_WORK=/scratch/w bash scripts/study.sh study
#   bash scripts/study.sh study -s leaderboard   # the board from the committed runs as they are (DVC single stage)
# On a CPU of another kind than the first sitting's, target the new runs (`run@METHOD-LANG-SEED`) and build the board
# with `-s leaderboard`: a whole-graph `dvc repro` regenerates the fixed stages there (QSM, features, selections), and
# a selection that is not byte-identical reruns every committed run that depends on it (docs/study-power.md).
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
snap="$repo/studies/$profile"
# A study is pinned to the code revision of its first sitting (studies/PROFILE/study-rev): later sittings run that
# revision, so the runs already committed stay current while this branch moves on. MDAQ_STUDY_REV=HEAD moves the
# study to newer code (DVC then reruns the runs whose code changed).
rev="${MDAQ_STUDY_REV:-}"
if [ -z "$rev" ] && [ -f "$snap/study-rev" ]; then rev="$(cat "$snap/study-rev")"; fi
rev="$(git rev-parse --verify "${rev:-HEAD}^{commit}")"
if [ "$rev" = "$(git rev-parse HEAD)" ] && \
   [ -n "$(git status --porcelain --untracked-files=no -- mdaq notebooks dvc.yaml profiles)" ]; then
  echo "study.sh: warning: uncommitted changes to the code are not in the study (it runs HEAD)" >&2
fi
echo "study.sh: profile $profile at revision $rev, in $work"
if [ -d "$work" ]; then   # a later sitting on this machine: the revision's files, the ignored artifacts/ kept
  git -C "$work" reset -q --hard   # its params.yaml, dvc.lock, results/ were saved into studies/ on exit
  git -C "$work" checkout -q --detach "$rev"
else
  git worktree add -q --detach "$work" "$rev"
fi
# snapshots are managed by this checkout's mdaq (run from its folder), the study itself by the revision's
study() { (cd "$repo" && python -m mdaq study "$1" "$profile" --work "$work" --repo "$repo"); }
cd "$work"
dvc cache dir --local "$repo/.dvc/cache"   # one DVC cache: the model assets and the data are not built twice
export PYTHONPATH="$work"                  # the worktree's mdaq, not the editable install of the checkout
# the design file comes from this checkout, the code and profiles/default.yaml from the pinned revision: a later
# sitting may grow the design (more methods, seeds or runs; `mdaq study restore` refuses any other change)
if ! cmp -s "$repo/profiles/$profile.yaml" "profiles/$profile.yaml"; then
  echo "study.sh: profiles/$profile.yaml of $repo differs from the pinned revision's: using it (a grown design?)"
  cp "$repo/profiles/$profile.yaml" "profiles/$profile.yaml"
fi
python -m mdaq profile use "$profile"
if [ -d "$snap" ]; then
  study restore
else   # a first sitting: the lock starts empty, so it (and the snapshot) records only what this study's stages ran
  printf "schema: '2.0'\nstages: {}\n" > dvc.lock
  echo "studies/$profile: no snapshot yet, the study starts afresh"
fi
echo "$rev" > study-rev   # saved with the snapshot: the next sitting runs the same code
# One precision per study (mdaq.pipeline.studies.precision_plan): `precision: auto` resolves per machine, so a sitting
# on a CPU with fast bf16 would train its runs in bf16 beside committed fp32 runs. There, the study's processes see a
# /proc/cpuinfo without the bf16 flags (a private mount namespace: root or unprivileged user namespaces), so `auto`
# resolves to fp32 as it did for the committed runs (their hardware records then say "no amx_bf16 / avx512_bf16").
# A sitting that cannot match the committed precision stops here; MDAQ_STUDY_MIXED_PRECISION=1 runs it anyway.
plan="as-is"
[ -n "${MDAQ_STUDY_MIXED_PRECISION:-}" ] || plan="$(study precision)"
wrap=()
if [ "$plan" = hide-cpu-bf16 ]; then
  wrap=(bash "$repo/scripts/without_cpu_bf16.sh")
  if ! "${wrap[@]}" python -c 'from mdaq.hardware import fast_bf16; assert not fast_bf16("cpu")[0]'; then
    echo "study.sh: cannot hide this CPU's bf16 flags: the new runs would be bf16 beside fp32 ones; run as root," \
         "on a CPU without fast bf16, or set MDAQ_STUDY_MIXED_PRECISION=1 (and say so where the results are quoted)" >&2
    exit 2
  fi
  echo "study.sh: the committed runs are fp32 and this CPU has fast bf16: the study runs with its bf16 flags hidden (fp32)"
fi
python -m mdaq data fetch --out data/midb
python -m mdaq profile prune-lock
save() { study save; }
trap save EXIT
# save after every stage DVC finishes: `dvc repro` of the whole graph, then a save, repeated, would rerun nothing;
# a watcher that saves when dvc.lock changes keeps a killed sitting's finished runs
( last=""; while sleep 30; do
    now="$(stat -c %Y dvc.lock 2>/dev/null || true)"
    if [ -n "$now" ] && [ "$now" != "$last" ] && save >/dev/null 2>&1; then last="$now"; fi
  done ) &
watcher=$!
trap 'kill $watcher 2>/dev/null || true; save' EXIT
"${wrap[@]}" dvc repro "$@"
if [ "$#" -eq 0 ] || [[ " $* " == *" leaderboard "* ]]; then "${wrap[@]}" python -m mdaq leaderboard; fi
