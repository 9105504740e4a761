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
venv=${BENCH_VENV:-$PWD/bench/.venv}
if [ ! -x "$venv/bin/dvc" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q dvc==3.67.1
fi
dvc=$venv/bin/dvc
work=$(mktemp -d "${BENCH_DIR:-/tmp}/cairn-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT

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
sync

now() { date +%s.%N; }
timed() { local t0 t1; t0=$(now); "$@" > /dev/null 2>&1; t1=$(now); awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }'; }

# Cairn, embedded mode.
cairn_push=$(timed "$cairn" --registry "$work/registry" push "$work/tree" --model many)
cairn_repush=$(timed "$cairn" --registry "$work/registry" push "$work/tree" --model many)
stored=$(find "$work/registry/blobs/sha256" -type f | wc -l)

# The floor: creating the same number of files durably, with no hashing at all.
cp_floor=$(timed sh -c "cp -r '$work/tree' '$work/cp-copy' && sync")

# DVC on a copy of the same tree, pushing to a local remote.
mkdir -p "$work/dvc" "$work/dvc-remote"
cp -r "$work/tree" "$work/dvc/tree"
sync
(cd "$work/dvc" && "$dvc" init --no-scm -q && "$dvc" remote add -d -q local "$work/dvc-remote")
dvc_first=$(cd "$work/dvc" && timed sh -c "'$dvc' add tree && '$dvc' push")
dvc_again=$(cd "$work/dvc" && timed sh -c "'$dvc' add tree && '$dvc' push")

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f×", a / b }'; }
printf '\n%s files × %s KiB, %s cores, %s; Cairn stored %s blobs\n\n' "$files" "$kib" "$(nproc)" "$(date -u +%Y-%m-%d)" "$stored"
printf '| %-40s | %8s | %18s |\n' "operation" "seconds" "cairn faster by"
printf '|%s|%s|%s|\n' "------------------------------------------" "----------" "--------------------"
printf '| %-40s | %8s | %18s |\n' "cairn push (first)" "$cairn_push" ""
printf '| %-40s | %8s | %18s |\n' "cp -r + sync (file-creation floor)" "$cp_floor" "$(ratio "$cp_floor" "$cairn_push")"
printf '| %-40s | %8s | %18s |\n' "dvc add + dvc push (first)" "$dvc_first" "$(ratio "$dvc_first" "$cairn_push")"
printf '| %-40s | %8s | %18s |\n' "cairn push (no-op re-push)" "$cairn_repush" ""
printf '| %-40s | %8s | %18s |\n' "dvc add + dvc push (no-op)" "$dvc_again" "$(ratio "$dvc_again" "$cairn_repush")"
