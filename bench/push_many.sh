#!/usr/bin/env bash
# A push of many small files (default 10,000 × 4 KiB) and a no-op re-push of the same
# tree, in embedded mode, next to `dvc add` + `dvc push` to a local DVC remote on the
# same tree, in the same run. DVC (3.67.1) comes from PyPI into a venv under bench/.venv.
#
#   bench/push_many.sh [FILES] [FILE_KIB]
set -euo pipefail
cd "$(dirname "$0")/.."
files=${1:-10000}
kib=${2:-4}
cargo build --release -q -p cairn
cairn=$PWD/target/release/cairn
# Absolute: DVC runs from inside its own work directory.
venv=$(realpath -m "${BENCH_VENV:-$PWD/bench/.venv}")
if [ ! -x "$venv/bin/dvc" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q dvc==3.67.1
fi
dvc=$venv/bin/dvc
work=$(mktemp -d "${BENCH_DIR:-/tmp}/cairn-bench.XXXXXX")
trap 'rm -rf "$work"; sync' EXIT

echo "writing $files files of $kib KiB…" >&2
python3 - "$work/tree" "$files" "$kib" <<'PY'
import os, sys
root, n, kib = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(n):
    d = os.path.join(root, f"shard{i % 100:02d}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"part{i:05d}.bin"), "wb") as f:
        f.write(os.urandom(kib * 1024))
PY
# Ext4 without a journal (this kind of machine's root filesystem) steps over inodes
# freed in the last minute, or the last six while their inode table block is dirty,
# when it allocates new ones, at a cost per inode stepped over: a run within minutes of
# many files being deleted (a previous run's clean-up) measures that instead of the
# tools (cp -r of this tree took 2–6 s instead of 0.3). Everything is flushed, then
# left to age; SETTLE_SECONDS=0 skips the wait on a machine that has not deleted much.
sync
sleep "${SETTLE_SECONDS:-370}"

now() { date +%s.%N; }
timed() { local t0 t1; t0=$(now); "$@" > /dev/null 2>&1; t1=$(now); awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }'; }
median() { printf '%s\n' "$@" | sort -n | sed -n 2p; }

# Three rounds of each, every one into places of its own (nothing is deleted until the
# end, for the reason above), medians printed. Each timed step starts with nothing left
# to flush (`sync` first): Cairn's push ends with a filesystem-wide sync, which would
# otherwise pay for what the step before it wrote. An untimed push first: the first
# process after a quiet spell runs slower on this kind of machine, whatever it is.
"$cairn" --registry "$work/warm-up" push "$work/tree" --model many > /dev/null 2>&1
cairn_runs=() repush_runs=() cp_runs=() dvc_runs=() dvc_again_runs=()
for i in 1 2 3; do
  # Cairn, embedded mode.
  sync
  cairn_runs+=("$(timed "$cairn" --registry "$work/registry-$i" push "$work/tree" --model many)")
  repush_runs+=("$(timed "$cairn" --registry "$work/registry-$i" push "$work/tree" --model many)")

  # The floor: creating the same number of files durably, with no hashing at all.
  sync
  cp_runs+=("$(timed sh -c "cp -r '$work/tree' '$work/cp-copy-$i' && sync")")

  # DVC on a copy of the same tree, pushing to a local remote.
  mkdir -p "$work/dvc-$i" "$work/dvc-remote-$i"
  cp -r "$work/tree" "$work/dvc-$i/tree"
  sync
  (cd "$work/dvc-$i" && "$dvc" init --no-scm -q && "$dvc" remote add -d -q local "$work/dvc-remote-$i")
  dvc_runs+=("$(cd "$work/dvc-$i" && timed sh -c "'$dvc' add tree && '$dvc' push")")
  sync
  dvc_again_runs+=("$(cd "$work/dvc-$i" && timed sh -c "'$dvc' add tree && '$dvc' push")")
done
stored=$(find "$work/registry-1/blobs/sha256" -type f | wc -l)
cairn_push=$(median "${cairn_runs[@]}")
cairn_repush=$(median "${repush_runs[@]}")
cp_floor=$(median "${cp_runs[@]}")
dvc_first=$(median "${dvc_runs[@]}")
dvc_again=$(median "${dvc_again_runs[@]}")
echo "rounds (s): cairn ${cairn_runs[*]}; re-push ${repush_runs[*]}; cp ${cp_runs[*]}; dvc ${dvc_runs[*]}; dvc again ${dvc_again_runs[*]}" >&2

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f×", a / b }'; }
printf '\n%s files × %s KiB, %s cores, %s, medians of 3; Cairn stored %s blobs\n\n' "$files" "$kib" "$(nproc)" "$(date -u +%Y-%m-%d)" "$stored"
printf '| %-40s | %8s | %18s |\n' "operation" "seconds" "cairn faster by"
printf '|%s|%s|%s|\n' "------------------------------------------" "----------" "--------------------"
printf '| %-40s | %8s | %18s |\n' "cairn push (first)" "$cairn_push" ""
printf '| %-40s | %8s | %18s |\n' "cp -r + sync (file-creation floor)" "$cp_floor" "$(ratio "$cp_floor" "$cairn_push")"
printf '| %-40s | %8s | %18s |\n' "dvc add + dvc push (first)" "$dvc_first" "$(ratio "$dvc_first" "$cairn_push")"
printf '| %-40s | %8s | %18s |\n' "cairn push (no-op re-push)" "$cairn_repush" ""
printf '| %-40s | %8s | %18s |\n' "dvc add + dvc push (no-op)" "$dvc_again" "$(ratio "$dvc_again" "$cairn_repush")"
