#!/usr/bin/env bash
# `cairn verify --all` (re-hash every blob of every version, on all cores) next to
# `openssl dgst -sha256` (the CPU's SHA instructions) over the same blob files in the
# same run: once on one core, once with one openssl process per core. Blobs are read
# once beforehand, so both read from the page cache and the comparison is hashing.
#
#   bench/verify.sh [FILES] [MIB_PER_FILE]      (default 64 files of 32 MiB: 2 GiB)
set -euo pipefail
cd "$(dirname "$0")/.."
files=${1:-64}
mib=${2:-32}
cargo build --release -q -p cairn
cairn=$PWD/target/release/cairn
work=$(mktemp -d "${BENCH_DIR:-/tmp}/cairn-verify.XXXXXX")
trap 'rm -rf "$work"' EXIT
cores=$(nproc)

echo "writing $files random files of $mib MiB and pushing them…" >&2
mkdir -p "$work/model"
for i in $(seq 1 "$files"); do
  head -c "$((mib * 1024 * 1024))" /dev/urandom > "$work/model/part-$i.bin"
done
"$cairn" --registry "$work/reg" push "$work/model" --model bench >/dev/null 2>&1
rm -rf "$work/model"
find "$work/reg/blobs/sha256" -type f > "$work/blobs.txt"
total_mib=$((files * mib))
xargs cat < "$work/blobs.txt" > /dev/null  # warm the page cache for every contender

now() { date +%s.%N; }
rate() { awk -v a="$1" -v b="$2" -v m="$total_mib" 'BEGIN { printf "%.0f", m * 1.048576 / (b - a) }'; }

t0=$(now); "$cairn" --registry "$work/reg" verify --all 2>/dev/null; t1=$(now)
cairn_rate=$(rate "$t0" "$t1")
t0=$(now); xargs openssl dgst -sha256 < "$work/blobs.txt" > /dev/null; t1=$(now)
openssl_one=$(rate "$t0" "$t1")
t0=$(now); xargs -P "$cores" -n 1 openssl dgst -sha256 < "$work/blobs.txt" > /dev/null; t1=$(now)
openssl_all=$(rate "$t0" "$t1")

echo
echo "$files blobs, $total_mib MiB, $cores cores, $(date +%F)"
echo
echo "| hashing the same blobs | MB/s | vs openssl on all cores |"
echo "|---|---:|---:|"
echo "| cairn verify --all | $cairn_rate | $(awk -v a="$cairn_rate" -v b="$openssl_all" 'BEGIN { printf "%.0f%%", 100 * a / b }') |"
echo "| openssl dgst -sha256, one process per core | $openssl_all | 100% |"
echo "| openssl dgst -sha256, one core | $openssl_one | $(awk -v a="$openssl_one" -v b="$openssl_all" 'BEGIN { printf "%.0f%%", 100 * a / b }') |"
