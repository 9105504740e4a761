#!/usr/bin/env bash
# A push of one large file (default 1 GiB) in embedded mode, next to its floor measured
# in the same run: `openssl dgst -sha256` (the hash, with the CPU's SHA instructions)
# + `cp` + `sync` (one copy, made durable). Each is timed from a warm page cache (the
# file was just written and read once), five times, alternating; the medians are printed
# (this kind of machine's disk varies by 2× from one minute to the next).
#
#   bench/push_large.sh [SIZE_MIB]      (default 1024)
set -euo pipefail
cd "$(dirname "$0")/.."
size_mib=${1:-1024}
cargo build --release -q -p cairn
cairn=$PWD/target/release/cairn
work=$(mktemp -d "${BENCH_DIR:-/tmp}/cairn-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT

mkdir -p "$work/model"
echo "writing a ${size_mib} MiB random file…" >&2
head -c "$((size_mib * 1024 * 1024))" /dev/urandom > "$work/model/weights.bin"
sync
cat "$work/model/weights.bin" > /dev/null

now() { date +%s.%N; }
timed() { local t0 t1; t0=$(now); "$@" > /dev/null 2>&1; t1=$(now); awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }'; }
median() { printf '%s\n' "$@" | sort -n | sed -n 3p; }

floor_runs=() push_runs=()
for i in 1 2 3 4 5; do
  floor_runs+=("$(timed sh -c "openssl dgst -sha256 '$work/model/weights.bin' && cp '$work/model/weights.bin' '$work/copy.bin' && sync")")
  rm -f "$work/copy.bin"; sync
  # A registry of its own each time: every push stores the blob anew.
  push_runs+=("$(timed "$cairn" --registry "$work/registry-$i" push "$work/model" --model big --no-git)")
  rm -rf "$work/registry-$i"; sync
done
floor=$(median "${floor_runs[@]}")
push=$(median "${push_runs[@]}")
printf '\none %s MiB file, %s cores, %s (median of 5)\n\n' "$size_mib" "$(nproc)" "$(date -u +%Y-%m-%d)"
printf '| operation | seconds | MB/s | / floor |\n|---|---:|---:|---:|\n'
mbps() { awk -v s="$1" -v m="$size_mib" 'BEGIN { printf "%.0f", m * 1.048576 / s }'; }
printf '| openssl dgst -sha256 + cp + sync (floor) | %s | %s | 1.00 |\n' "$floor" "$(mbps "$floor")"
printf '| cairn push (embedded) | %s | %s | %s |\n' "$push" "$(mbps "$push")" "$(awk -v a="$push" -v b="$floor" 'BEGIN { printf "%.2f", a / b }')"
