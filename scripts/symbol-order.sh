#!/usr/bin/env bash
# Writes linker/symbol-order.txt: the functions the server executes when it
# starts, serves health checks, and plays the common routes (register, read the
# player and the heroes, summon, fight, level up, leaderboard), as the release
# build names them. `build.rs` hands the file to the linker, which puts those
# functions together at the start of the code; they are then mapped in a few
# MB instead of pages all over the binary (README, Performance: idle RSS).
# Builds nothing: run `cargo build --release` first, then this, then
# `cargo build --release` again (it only relinks). Run it again after a
# dependency update or a large change: names the file lists that a build no
# longer has are skipped, so an old file loses its effect slowly, not at once.
# Needs valgrind (callgrind), curl and python3.
# Usage: scripts/symbol-order.sh [BIN]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-${CARGO_TARGET_DIR:-$HOME/.cache/divine-heroes-target}/release/divine-heroes}
OUT=linker/symbol-order.txt
command -v valgrind >/dev/null || { echo "valgrind is needed: apt-get install -y valgrind" >&2; exit 1; }
[ -x "$BIN" ] || { echo "build first: cargo build --release (or pass the binary)" >&2; exit 1; }
[ "$(nm --defined-only "$BIN" 2>/dev/null | grep -c ' [tT] ')" -gt 0 ] ||
  { echo "$BIN has no symbol table (strip = \"debuginfo\" keeps it)" >&2; exit 1; }

PORT=${PORT:-18743}
DATA=$(mktemp -d)
PID=
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null; rm -rf "$DATA"' EXIT
base=http://127.0.0.1:$PORT
DATA_DIR=$DATA/store HOST=127.0.0.1 RUST_LOG=warn LOG_FORMAT=json SHUTDOWN_DELAY_SECS=0 METRICS_ENABLED=true \
  valgrind --tool=callgrind --demangle=no --callgrind-out-file="$DATA/callgrind.out" \
  "$BIN" serve --role all --port "$PORT" >"$DATA/server.log" 2>&1 &
PID=$!
for _ in $(seq 1 600); do curl -sf "$base/health/ready" >/dev/null && break; sleep 0.5; done
curl -sf "$base/health/ready" >/dev/null || { cat "$DATA/server.log" >&2; exit 1; }

# Every request's status is ignored: a refused one (no gems left, a level cap)
# runs most of the same code.
for _ in $(seq 1 100); do curl -s -o /dev/null "$base/health/live"; done
curl -s -o /dev/null "$base/metrics"
token=$(curl -sf -XPOST "$base/api/auth/register" -H 'content-type: application/json' \
  -d '{"username":"symbol_order","password":"symbol-order-password"}' |
  python3 -c 'import sys,json;print(json.load(sys.stdin)["token"])')
curl -s -o /dev/null -XPOST "$base/api/auth/login" -H 'content-type: application/json' \
  -d '{"username":"symbol_order","password":"symbol-order-password"}'
auth=(-H "Authorization: Bearer $token")
post() { # path body key
  curl -s -o /dev/null -XPOST "$base$1" "${auth[@]}" -H "Idempotency-Key: $3" -H 'content-type: application/json' -d "$2"
}
for i in 1 2 3; do
  curl -s -o /dev/null "$base/api/player" "${auth[@]}"
  curl -s -o /dev/null "$base/api/heroes" "${auth[@]}"
  curl -s -o /dev/null "$base/api/leaderboards/power" "${auth[@]}"
  post /api/gacha/summon '{"banner_id":"standard","count":1}' "x1-$i"
  post /api/gacha/summon '{"banner_id":"standard","count":10}' "x10-$i"
  post /api/battle/campaign/1/1/fight '{}' "fight-$i"
  post /api/heroes/kai_the_tempest/level-up '{"levels":1}' "level-$i"
done
sleep 2 # the events' relay and consumers run their rounds
kill -INT "$PID"
wait "$PID" || true
PID=

# Executed functions (callgrind's fn= and cfn= names) that are the binary's own
# code, sorted so that a new file differs from the old one only where it should.
python3 - "$DATA/callgrind.out" "$BIN" "$OUT" <<'PY'
import re, subprocess, sys
out, binary, dest = sys.argv[1:]
executed = set()
for line in open(out, errors="replace"):
    m = re.match(r"c?fn=\(\d+\) (\S+)$", line.rstrip("\n"))
    if m:
        executed.add(m.group(1))
nm = subprocess.run(["nm", "--defined-only", binary], capture_output=True, text=True, check=True).stdout
code = {p[2] for p in (l.split() for l in nm.splitlines()) if len(p) == 3 and p[1] in "tTwW"}
hot = sorted(executed & code)
with open(dest, "w") as f:
    f.write("".join(name + "\n" for name in hot))
print(f"{dest}: {len(hot)} functions")
PY
