#!/usr/bin/env bash
# Bounded load against a local server on 127.0.0.1, with wrk: real summons or
# real campaign fights.
# Starts `serve --role all` on the embedded store in a scratch directory,
# registers 64 players, gives each a large coin wallet with the operator
# `grant` command (server stopped, as the embedded file has one owner), restarts
# the server and runs wrk for DURATION seconds with CONNECTIONS connections:
# every request is a real standard-banner summon (MODE=summon) or a real 1-1
# campaign fight (MODE=fight, stamina granted likewise) with a fresh
# Idempotency-Key. Prints requests/s and latency percentiles, after the same
# load on the server's own /health/live, and the ratio of the two: machines
# here are shared and noisy, so compare ratios, not absolute figures.
# The server runs on CPU $SERVER_CPU (default 0) and wrk on $LOAD_CPU (default 1).
# Usage: scripts/load.sh [summon|fight|summon10] [DURATION=10] [CONNECTIONS=32]
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=${1:-summon}
DURATION=${2:-10}
CONNECTIONS=${3:-32}
case "$MODE" in
  summon) CURRENCY=coins; PATH_=/api/gacha/summon; BODY='{"banner_id":"standard","count":1}' ;;
  summon10) CURRENCY=coins; PATH_=/api/gacha/summon; BODY='{"banner_id":"standard","count":10}' ;;
  fight) CURRENCY=stamina; PATH_=/api/battle/campaign/1/1/fight; BODY='{}' ;;
  *) echo "mode is summon, summon10 or fight" >&2; exit 2 ;;
esac
BIN=${BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/divine-heroes-target}/release/divine-heroes}
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install -y wrk" >&2; exit 1; }
[ -x "$BIN" ] || { echo "build first: cargo build --release" >&2; exit 1; }

PORT=${PORT:-18731}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
DATA=$(mktemp -d)
trap 'kill "$PID" 2>/dev/null || true; rm -rf "$DATA"' EXIT
DATA_DIR=$DATA RATE_LIMIT_REQUESTS=100000000 AUTH_RATE_LIMIT_REQUESTS=100000000 LOG_FORMAT=json RUST_LOG=warn HOST=127.0.0.1 \
  "$BIN" serve --role all --port "$PORT" >"$DATA/server.log" 2>&1 &
PID=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/health/ready" >/dev/null && break; sleep 0.05; done

# Many players, so that the load is not one player's writes in a queue.
TOKENS=$DATA/tokens.lua
echo "tokens = {" >"$TOKENS"
for i in $(seq 1 64); do
  t=$(curl -sf -XPOST "http://127.0.0.1:$PORT/api/auth/register" -H 'content-type: application/json' \
        -d "{\"username\":\"load_$i\",\"password\":\"load-test-password\"}" | python3 -c 'import sys,json;print(json.load(sys.stdin)["token"])')
  echo "  \"$t\"," >>"$TOKENS"
done
echo "}" >>"$TOKENS"

kill "$PID"; wait "$PID" || true
for i in $(seq 1 64); do
  DATA_DIR=$DATA "$BIN" grant --to "load_$i" --currency "$CURRENCY" --amount 1000000000 --note load-test >/dev/null
done
DATA_DIR=$DATA RATE_LIMIT_REQUESTS=100000000 AUTH_RATE_LIMIT_REQUESTS=100000000 LOG_FORMAT=json RUST_LOG=warn HOST=127.0.0.1 \
  taskset -c "$SERVER_CPU" "$BIN" serve --role all --port "$PORT" >>"$DATA/server.log" 2>&1 &
PID=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/health/ready" >/dev/null && break; sleep 0.05; done

cat >"$DATA/summon.lua" <<LUA
dofile("$TOKENS")
local n = 0
request = function()
  n = n + 1
  local t = tokens[(n % #tokens) + 1]
  -- A fresh key per request: every request is a real summon or fight.
  return wrk.format("POST", "$PATH_", {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. t,
    ["Idempotency-Key"] = "load-" .. n .. "-" .. math.random(1, 1000000000),
  }, '$BODY')
end
done = function(summary, latency, requests)
  io.write(string.format("requests/s: %.0f\n", summary.requests / (summary.duration / 1e6)))
  for _, p in ipairs({50, 90, 99, 99.9}) do
    io.write(string.format("p%s: %.2f ms\n", p, latency:percentile(p) / 1000))
  end
  io.write(string.format("non-2xx: %d\n", summary.errors.status))
end
LUA
cat >"$DATA/live.lua" <<'LUA'
done = function(summary, latency, requests)
  io.write(string.format("requests/s: %.0f\n", summary.requests / (summary.duration / 1e6)))
  io.write(string.format("p50: %.2f ms\np99: %.2f ms\n", latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
LUA
echo "== GET /health/live"
taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" -s "$DATA/live.lua" "http://127.0.0.1:$PORT/health/live" | tee "$DATA/live.out"
echo "== $MODE: POST $PATH_ $BODY"
taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" -s "$DATA/summon.lua" "http://127.0.0.1:$PORT" | tee "$DATA/route.out"
live=$(awk '/^requests\/s/ {print $2}' "$DATA/live.out")
route=$(awk '/^requests\/s/ {print $2}' "$DATA/route.out")
python3 -c "print(f'ratio to /health/live: {$route / $live:.4f} ({$route} / {$live} req/s)')"
echo "server RSS after the load: $(awk '/VmRSS/ {print $2, $3}' /proc/$PID/status)"
echo "data directory: $(du -sh "$DATA" | cut -f1)"
