#!/usr/bin/env bash
# Writes linker/symbol-order.txt: the functions the server executes when it
# starts, serves health checks, and plays the common routes (register, read the
# player and the heroes, summon, fight, level up, leaderboard), as the release
# build names them. `build.rs` hands the file to the linker, which puts those
# functions together at the start of the code; they are then mapped in a few
# MB instead of pages all over the binary (README, Performance: idle RSS).
# Builds nothing: run `cargo build --release` first, then this, then
# `cargo build --release` again (it recompiles only this crate). Run it after a
# dependency update or a large change: names the file lists that a build no
# longer has are skipped, so an old file loses its effect slowly, not at once.
# With MONGO_URL and REDIS_URL set (a MongoDB replica set and a Redis), a second
# pass runs on them, as the deployed roles do. Needs valgrind, curl and python3.
# Usage: [MONGO_URL=... REDIS_URL=...] scripts/symbol-order.sh [BIN]
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

# One pass: the server under callgrind with the given settings, the routes, a
# graceful stop. Every request's status is ignored: a refused one (no gems
# left, a level cap) runs most of the same code.
pass() { # name, then VAR=value settings
  local name=$1
  shift
  # Only the given settings: the embedded pass must not pick up MONGO_URL.
  env -u MONGO_URL -u MONGO_DB -u REDIS_ENABLED -u REDIS_URL -u MQ_BACKEND "$@" DATA_DIR="$DATA/$name" \
    HOST=127.0.0.1 RUST_LOG=warn LOG_FORMAT=json SHUTDOWN_DELAY_SECS=0 METRICS_ENABLED=true \
    valgrind --tool=callgrind --demangle=no --callgrind-out-file="$DATA/callgrind.$name" \
    "$BIN" serve --role all --port "$PORT" >"$DATA/$name.log" 2>&1 &
  PID=$!
  for _ in $(seq 1 600); do curl -sf "$base/health/ready" >/dev/null && break; sleep 0.5; done
  curl -sf "$base/health/ready" >/dev/null || { cat "$DATA/$name.log" >&2; exit 1; }
  for _ in $(seq 1 100); do curl -s -o /dev/null "$base/health/live"; done
  curl -s -o /dev/null "$base/metrics"
  local user=symbol_order_$RANDOM token
  token=$(curl -sf -XPOST "$base/api/auth/register" -H 'content-type: application/json' \
    -d "{\"username\":\"$user\",\"password\":\"symbol-order-password\"}" |
    python3 -c 'import sys,json;print(json.load(sys.stdin)["token"])')
  curl -s -o /dev/null -XPOST "$base/api/auth/login" -H 'content-type: application/json' \
    -d "{\"username\":\"$user\",\"password\":\"symbol-order-password\"}"
  local auth=(-H "Authorization: Bearer $token")
  post() { # path body key
    curl -s -o /dev/null -XPOST "$base$1" "${auth[@]}" -H "Idempotency-Key: $3" \
      -H 'content-type: application/json' -d "$2"
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
}

pass embedded
# The production settings too (MongoDB, Redis cache and queue) when given:
# their drivers' code is then placed with the rest.
if [ -n "${MONGO_URL:-}" ] && [ -n "${REDIS_URL:-}" ]; then
  pass mongo MONGO_URL="$MONGO_URL" MONGO_DB="symbol_order_$RANDOM" REDIS_ENABLED=true REDIS_URL="$REDIS_URL" \
    MQ_BACKEND=redis CACHE_PREFIX="symbol_order_$RANDOM"
fi

# Executed functions (callgrind's fn= and cfn= names) that are the binary's own
# code: first those every pass ran, then each pass's own, so that a server on
# one store maps little of the other's; sorted within each group so that a new
# file differs from the old one only where it should.
python3 - "$BIN" "$OUT" "$DATA"/callgrind.embedded "$DATA"/callgrind.mongo <<'PY'
import os, re, subprocess, sys
binary, dest, *outs = sys.argv[1:]
nm = subprocess.run(["nm", "--defined-only", binary], capture_output=True, text=True, check=True).stdout
code = {p[2] for p in (l.split() for l in nm.splitlines()) if len(p) == 3 and p[1] in "tTwW"}
passes = []
for out in outs:
    if not os.path.exists(out):
        continue
    executed = set()
    for line in open(out, errors="replace"):
        m = re.match(r"c?fn=\(\d+\) (\S+)$", line.rstrip("\n"))
        if m:
            executed.add(m.group(1))
    passes.append(executed & code)
common = set.intersection(*passes)
order, placed = sorted(common), set(common)
for executed in passes:
    order += sorted(executed - placed)
    placed |= executed
with open(dest, "w") as f:
    f.write("".join(name + "\n" for name in order))
print(f"{dest}: {len(order)} functions ({len(common)} in every pass)")
PY
