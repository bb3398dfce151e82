#!/usr/bin/env bash
# The HTTP benchmark of the write path, in one run on one machine: builds
# nothing, starts the release binary (`serve --role all`, embedded store) on a
# scratch data directory, registers players and funds them with the operator
# `grant` command, then measures with wrk, one route after another:
#   GET /health/live (the server's own ceiling), GET /api/player, the power
#   leaderboard with the caller's rank, a single
#   summon, a 10-pull, a campaign fight and a hero level-up,
# every write with a fresh Idempotency-Key, and prints for each route requests/s,
# p50, p99, non-2xx answers, its ratio to /health/live and the disk bytes the
# store grew by per successful request, and the bytes the server wrote (its
# write_bytes in /proc: every page the commits dirtied, counted by whole page-cache
# folio, so high on a store just copied or read through; README) per successful request;
# the writes per commit of the embedded store (group size) and the server's CPU
# time per request (all threads, the events' relay and consumers included);
# then the server's RSS before and after, and its peak. Then the writes once
# more at about half of the rate each reached (every connection pausing
# between requests), for their latency below saturation.
# Machines here are shared and noisy: compare ratios within one run.
# The server runs on CPU $SERVER_CPU (default 0) and wrk on $LOAD_CPU (default 1)
# when the machine has two cores or more.
# SEED_PLAYERS=N first creates N other players in bulk (`divine-heroes seed`),
# to see how the cost of a request changes with the size of the store.
# STORE_FROM=dir starts from a copy of the embedded store in dir instead of an
# empty one (one seeded once with `DATA_DIR=dir divine-heroes seed ...`: 1M
# players took 500 s to seed here, about a minute to copy).
# PERF_ROUTE=<route name as printed> records that route with `perf record -g`
# into PERF_OUT (default perf.data); build with `--profile profiling` for lines
# (PERF_CALLGRAPH=dwarf for whole call chains through code without frame pointers).
# ROUNDS=N runs the whole list N times on the same store (see below).
# SERVE_ARGS adds flags to `serve` (for example --no-workers: no event relay
# or consumers in the process, to see what they cost the write path).
# Usage: scripts/bench-http.sh [SECONDS=5] [CONNECTIONS=32] [PLAYERS=128]
# Needs wrk (apt-get install -y wrk), curl and python3; the binary from
# `cargo build --release` (or BIN=path).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-5}
CONNECTIONS=${2:-32}
PLAYERS=${3:-128}
# ROUNDS=N loads every route N times in a row on the same server and store, to
# see whether the cost of a request grows with the data the earlier rounds left.
ROUNDS=${ROUNDS:-1}
BIN=${BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/divine-heroes-target}/release/divine-heroes}
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install -y wrk" >&2; exit 1; }
[ -x "$BIN" ] || { echo "build first: cargo build --release (or set BIN)" >&2; exit 1; }

PORT=${PORT:-18741}
if [ "$(nproc)" -ge 2 ]; then
  SERVER_PIN=(taskset -c "${SERVER_CPU:-0}"); LOAD_PIN=(taskset -c "${LOAD_CPU:-1}")
else
  SERVER_PIN=(); LOAD_PIN=()
fi
DATA=$(mktemp -d)
PID=
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null; rm -rf "$DATA"' EXIT
export DATA_DIR=$DATA/store RATE_LIMIT_REQUESTS=1000000000 AUTH_RATE_LIMIT_REQUESTS=1000000000 \
  LOG_FORMAT=json RUST_LOG=warn HOST=127.0.0.1 SHUTDOWN_DELAY_SECS=0 METRICS_ENABLED=true
# As the image runs it (Dockerfile): one malloc arena, unless set otherwise.
export MALLOC_ARENA_MAX=${MALLOC_ARENA_MAX:-1}
base=http://127.0.0.1:$PORT

start() {
  # shellcheck disable=SC2086 # SERVE_ARGS: extra serve flags, word-split on purpose
  "${SERVER_PIN[@]}" "$BIN" serve --role all --port "$PORT" ${SERVE_ARGS:-} >>"$DATA/server.log" 2>&1 &
  PID=$!
  for _ in $(seq 1 200); do curl -sf "$base/health/ready" >/dev/null && return; sleep 0.05; done
  echo "the server did not become ready; its log:" >&2; cat "$DATA/server.log" >&2; exit 1
}
stop() { kill "$PID"; wait "$PID" || true; PID=; }

if [ -n "${STORE_FROM:-}" ]; then
  cp -r --sparse=never "$STORE_FROM" "$DATA/store"
  sync # the copy written back before the load, not during it
fi
if [ "${SEED_PLAYERS:-0}" -gt 0 ]; then
  echo "seeding $SEED_PLAYERS players: $("$BIN" seed --players "$SEED_PLAYERS" --prefix seeded_)"
fi
start
echo "registering $PLAYERS players"
echo "tokens = {" >"$DATA/tokens.lua"
for i in $(seq 1 "$PLAYERS"); do
  curl -sf -XPOST "$base/api/auth/register" -H 'content-type: application/json' \
    -d "{\"username\":\"bench_$i\",\"password\":\"bench-password-$i\"}" |
    python3 -c 'import sys,json;print("  \"%s\"," % json.load(sys.stdin)["token"])' >>"$DATA/tokens.lua"
done
echo "}" >>"$DATA/tokens.lua"
heroes=$(curl -sf "$base/api/heroes" -H "Authorization: Bearer $(sed -n 2p "$DATA/tokens.lua" | tr -d ' ",')" |
  python3 -c 'import sys,json;print(",".join("\"%s\"" % h["hero_id"] for h in json.load(sys.stdin)["items"]))')
echo "heroes = {$heroes}" >>"$DATA/tokens.lua"
stop
echo "funding them (the embedded store has one owner: the server is stopped)"
for i in $(seq 1 "$PLAYERS"); do
  for c in coins:1000000000 stamina:1000000000 gold:1000000000000; do
    "$BIN" grant --to "bench_$i" --currency "${c%%:*}" --amount "${c##*:}" --note bench >/dev/null
  done
done
start
rss() { awk '/VmRSS/ {print $2}' "/proc/$PID/status"; }
disk() { du -sb "$DATA/store" | cut -f1; }
written() { awk '/^write_bytes/ {print $2}' "/proc/$PID/io"; }
# The server's CPU time so far (user + system, every thread), in clock ticks.
cpu_ticks() { sed 's/.*) //' "/proc/$PID/stat" | awk '{print $12 + $13}'; }
TICK_HZ=$(getconf CLK_TCK)
# "commits writes": the embedded store's commits so far and the writes they carried.
commits() {
  curl -sf "$base/metrics/prometheus" | awk '/^divine_heroes_store_commits_total/ {c=$2}
    /^divine_heroes_store_grouped_writes_total/ {w=$2} END {print c+0, w+0}'
}
RSS_BEFORE=$(rss)

# One Lua script for every route: METHOD, PATH and BODY from the environment,
# players taken in turn, a fresh Idempotency-Key on every write.
cat >"$DATA/route.lua" <<LUA
dofile("$DATA/tokens.lua")
local method, path, body, run = os.getenv("METHOD"), os.getenv("ROUTE"), os.getenv("BODY"), os.getenv("RUN")
local n = 0
-- PAUSE_MS: each connection waits this long before its next request (a paced load).
local pause = tonumber(os.getenv("PAUSE_MS") or "0")
if pause > 0 then
  delay = function() return pause end
end
request = function()
  n = n + 1
  local t = tokens[(n % #tokens) + 1]
  local p = path:gsub("{hero}", heroes[(math.floor(n / #tokens) % #heroes) + 1])
  local headers = { ["Authorization"] = "Bearer " .. t }
  if method == "POST" then
    headers["Content-Type"] = "application/json"
    headers["Idempotency-Key"] = "bench-" .. run .. "-" .. n
  end
  return wrk.format(method, p, headers, method == "POST" and body or nil)
end
-- The first refusal, printed once, so that a non-2xx figure has a reason.
local told = false
response = function(status, headers, body)
  if status >= 300 and not told then
    told = true
    io.stderr:write("first non-2xx: " .. status .. " " .. string.sub(body or "", 1, 200) .. "\n")
  end
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT %.1f %.2f %.2f %d %d\n", summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, summary.errors.status, summary.requests))
end
LUA

# One row of the table, and its header.
ROW="%-28s %10s %9s %9s %8s %8s %12s %12s %7s %10s\n"
# shellcheck disable=SC2059 # ROW is the format
header() { printf "$ROW" route "req/s" "p50 ms" "p99 ms" non-2xx ratio "disk B/op" "written B/op" "group" "cpu us/op"; }

declare -A RATE P50
RUNS=0
run() { # name method path body
  local before after wrote_before wrote_after commits_before commits_after cpu_before cpu_after
  before=$(disk) wrote_before=$(written) commits_before=$(commits) cpu_before=$(cpu_ticks)
  local out
  RUNS=$((RUNS + 1))
  local perf_pid=
  if [ -n "${PERF_ROUTE:-}" ] && [ "$PERF_ROUTE" = "$1" ]; then
    perf record -F 999 --call-graph "${PERF_CALLGRAPH:-fp}" -p "$PID" -o "${PERF_OUT:-perf.data}" -- sleep "$DURATION" 2>/dev/null &
    perf_pid=$!
  fi
  out=$(PAUSE_MS=${PAUSE_MS:-0} RUN="$RUNS-$$" METHOD=$2 ROUTE=$3 BODY=$4 "${LOAD_PIN[@]}" wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" -s "$DATA/route.lua" "$base" |
    awk '/^RESULT/ {print $2, $3, $4, $5, $6}')
  [ -n "$perf_pid" ] && wait "$perf_pid"
  sleep 1 # the relay and consumers finish the route's events before the disk is measured
  after=$(disk) wrote_after=$(written) commits_after=$(commits) cpu_after=$(cpu_ticks)
  read -r rps p50 p99 non2xx total <<<"$out"
  [ "${PAUSE_MS:-0}" -gt 0 ] || { RATE[$1]=$rps; P50[$1]=$p50; }
  local ok=$((total - non2xx))
  local per_op="-" wrote_per_op="-" group="-"
  if [ "$2" = POST ] && [ "$ok" -gt 0 ]; then
    per_op=$(((after - before) / ok)) wrote_per_op=$(((wrote_after - wrote_before) / ok))
    # Mean writes per commit during the route (requests, relay and consumer rounds).
    group=$(python3 -c "b, a = '$commits_before'.split(), '$commits_after'.split()
c, w = int(float(a[0]) - float(b[0])), int(float(a[1]) - float(b[1]))
print(f'{w / c:.1f}' if c else '-')")
  fi
  # Server CPU per request (every thread, the events' relay and consumers included).
  local cpu_per_op
  cpu_per_op=$(python3 -c "print(round(($cpu_after - $cpu_before) / $TICK_HZ * 1e6 / max($total, 1)))")
  # shellcheck disable=SC2059 # ROW is the format
  printf "$ROW" "$1" "$rps" "$p50" "$p99" "$non2xx" \
    "$(python3 -c "print(f'{$rps / ${RATE[live]:-$rps}:.4f}')")" "$per_op" "$wrote_per_op" "$group" "$cpu_per_op"
}

for round in $(seq 1 "$ROUNDS"); do
  [ "$ROUNDS" -gt 1 ] && echo "round $round of $ROUNDS, store $(disk) bytes"
  header
  run live GET /health/live ""
  run "GET /api/player" GET /api/player ""
  run "GET /api/leaderboards/power" GET /api/leaderboards/power ""
  run "summon x1" POST /api/gacha/summon '{"banner_id":"standard","count":1}'
  run "summon x10" POST /api/gacha/summon '{"banner_id":"standard","count":10}'
  run "campaign fight 1-1" POST /api/battle/campaign/1/1/fight '{}'
  run "level-up (1 level)" POST '/api/heroes/{hero}/level-up' '{"levels":1}'
done
# Latency at about half of each write's maximum rate (the issue's p99 bound):
# every connection pauses so that all of them together ask for half the
# req/s measured above (a request's own time, about half its p50 at full
# load, counts towards the pause); the table shows the rate they got.
echo "at half of the maximum rate (paced: each connection pauses between requests)"
header
half() { # name method path body
  PAUSE_MS=$(python3 -c "print(max(1, round(1000 * $CONNECTIONS / (${RATE[$1]} / 2) - ${P50[$1]} / 2)))") run "$1 (half)" "$2" "$3" "$4"
}
half "summon x1" POST /api/gacha/summon '{"banner_id":"standard","count":1}'
half "summon x10" POST /api/gacha/summon '{"banner_id":"standard","count":10}'
half "campaign fight 1-1" POST /api/battle/campaign/1/1/fight '{}'
echo "server RSS: $RSS_BEFORE kB before the load, $(rss) kB after, $(awk '/VmHWM/ {print $2}' "/proc/$PID/status") kB at most"
echo "store on disk: $(disk) bytes"
