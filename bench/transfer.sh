#!/usr/bin/env bash
# Push and pull of one large file through `cairn server`, next to the machine's own
# limits measured in the same run: `openssl dgst -sha256` (hashing with the CPU's SHA
# instructions), `cp`, and `sync`. Prints a table with throughput and the peak RSS of the
# client and the server.
#
#   bench/transfer.sh [SIZE_MIB]        (default 2048)
set -euo pipefail
cd "$(dirname "$0")/.."
size_mib=${1:-2048}
cargo build --release -q -p cairn
cairn=$PWD/target/release/cairn
work=$(mktemp -d "${BENCH_DIR:-/tmp}/cairn-bench.XXXXXX")
server_pid=
trap '[ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; rm -rf "$work"' EXIT

mkdir -p "$work/src"
echo "writing a ${size_mib} MiB random file…" >&2
head -c "$((size_mib * 1024 * 1024))" /dev/urandom > "$work/src/weights.bin"
sync

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
mbps() { awk -v s="$1" -v m="$size_mib" 'BEGIN { printf "%.0f", m * 1.048576 / s }'; }
peak_kib() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }

# Baselines.
t0=$(now); openssl dgst -sha256 "$work/src/weights.bin" >/dev/null; t1=$(now)
hash_s=$(secs "$t0" "$t1")
t0=$(now); cp "$work/src/weights.bin" "$work/copy.bin"; sync; t1=$(now)
cp_s=$(secs "$t0" "$t1")
rm -f "$work/copy.bin"; sync

"$cairn" server --port 0 --data "$work/registry" > "$work/server.out" 2> "$work/server.err" &
server_pid=$!
for _ in $(seq 100); do grep -q listening "$work/server.out" 2>/dev/null && break; sleep 0.1; done
url=$(sed -n 's/.*listening on \(http[^ ]*\).*/\1/p' "$work/server.out")

# /usr/bin/time may be missing; read the client's peak RSS from its own /proc entry.
run_measured() {  # prints "seconds peak_kib"
  local t0 t1 pid peak=0 p
  t0=$(now)
  "$@" > /dev/null &
  pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    p=$(peak_kib "$pid" 2>/dev/null || echo 0); [ -n "$p" ] && [ "$p" -gt "$peak" ] && peak=$p
    sleep 0.05
  done
  wait "$pid"
  t1=$(now)
  echo "$(secs "$t0" "$t1") $peak"
}

read -r push_s push_rss < <(run_measured "$cairn" --registry "$url" push "$work/src" --model big)
server_after_push=$(peak_kib "$server_pid")
read -r pull_s pull_rss < <(run_measured "$cairn" --registry "$url" pull big@1 -o "$work/out")
server_after_pull=$(peak_kib "$server_pid")
cmp "$work/src/weights.bin" "$work/out/weights.bin"

printf '\n%s MiB file, %s cores, %s\n\n' "$size_mib" "$(nproc)" "$(date -u +%Y-%m-%d)"
printf '| %-44s | %8s | %8s | %15s |\n' "operation" "seconds" "MB/s" "peak RSS (MiB)"
printf '|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..46})" "----------" "----------" "-----------------"
row() { printf '| %-44s | %8.2f | %8s | %15s |\n' "$1" "$2" "$(mbps "$2")" "$3"; }
row "openssl dgst -sha256 (hash only)" "$hash_s" "-"
row "cp + sync (durable local copy)" "$cp_s" "-"
row "cairn push (client: hash + upload)" "$push_s" "$((push_rss / 1024))"
row "cairn pull (client: download + verify)" "$pull_s" "$((pull_rss / 1024))"
printf '| %-44s | %8s | %8s | %15s |\n' "cairn server during push / after pull" "-" "-" "$((server_after_push / 1024)) / $((server_after_pull / 1024))"
