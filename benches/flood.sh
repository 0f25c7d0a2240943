#!/usr/bin/env bash
# Memory under an unauthenticated flood (docs/performance.md, "Tenant state under
# a flood"): a tenant (acme, of the dev demo) holds KEYS key-value entries of
# VALUE_KIB KiB each; WAVES times, acme's admin writes one key (which makes its
# cached state stale) and then CONCURRENCY requests without a token arrive at
# once. Prints the server's resident memory (VmRSS) and its peak (VmHWM) at each
# step, and how the flood was answered.
#
# A server that loads tenant state before checking the token reads the whole
# store once per concurrent request in each wave; one that checks the token
# first reads nothing for them.
#
# Usage: benches/flood.sh
#   env: VENEER_BIN=<a built veneer> (default: build release into CARGO_TARGET_DIR)
#        KEYS=1500 VALUE_KIB=64 CONCURRENCY=12 WAVES=3 PORT=18490
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
KEYS=${KEYS:-1500}
VALUE_KIB=${VALUE_KIB:-64}
CONCURRENCY=${CONCURRENCY:-12}
WAVES=${WAVES:-3}
PORT=${PORT:-18490}
BASE="http://127.0.0.1:$PORT"
HOST="acme.localhost"

if [ -z "${VENEER_BIN:-}" ]; then
    export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/veneer-bench}
    echo "building veneer (release) in $CARGO_TARGET_DIR ..." >&2
    (cd "$ROOT" && cargo build --release -p veneer --features demo-plugins --bin veneer >&2)
    VENEER_BIN="$CARGO_TARGET_DIR/release/veneer"
fi
command -v sqlite3 >/dev/null || { echo "needs the sqlite3 command" >&2; exit 1; }

WORK=$(mktemp -d)
SERVER_PID=
cleanup() {
    if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

DB="$WORK/veneer.db"
ARGS=(serve --dev --listen "127.0.0.1:$PORT" --database-url "sqlite://$DB" --artifact-dir "$WORK/artifacts"
      --base-config "$ROOT/base-config")
# A build with key-value caps gets them raised so the store fits (the caps are
# a separate bound; this measures what an unauthenticated request costs).
if "$VENEER_BIN" serve --help | grep -q -- --kv-max-bytes; then
    ARGS+=(--kv-max-bytes $((KEYS * (VALUE_KIB + 1) * 1024)) --kv-max-keys $((KEYS + 10)))
fi

start() {
    RUST_LOG=warn "$VENEER_BIN" "${ARGS[@]}" >"$WORK/server.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 200); do
        curl -sf "$BASE/healthz" >/dev/null 2>&1 && return
        sleep 0.1
    done
    echo "the server did not start:" >&2; cat "$WORK/server.log" >&2; exit 1
}
stop() { kill "$SERVER_PID"; wait "$SERVER_PID" || true; SERVER_PID=; }
rss() { awk '/^VmRSS/ {rss=$2} /^VmHWM/ {hwm=$2} END {printf "%d MiB (peak %d MiB)", rss/1024, hwm/1024}' "/proc/$SERVER_PID/status"; }

# First start: schema and demo tenants. Then the store is filled directly in
# the database (through the API it would take a write per key).
start
stop
sqlite3 "$DB" <<SQL
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < $KEYS - 1)
INSERT INTO kv (tenant_id, key, value, updated_at)
    SELECT 'acme', printf('big-%05d', i), hex(randomblob($VALUE_KIB * 512)), 0 FROM n;
SQL
if sqlite3 "$DB" "SELECT name FROM sqlite_master WHERE name = 'kv_usage'" | grep -q kv_usage; then
    sqlite3 "$DB" "INSERT OR REPLACE INTO kv_usage (tenant_id, keys, bytes, version)
        SELECT tenant_id, count(*), sum(length(key) + length(value)), random() FROM kv GROUP BY tenant_id"
fi
start
TOKEN=$("$VENEER_BIN" dev-token --tenant acme)

echo "veneer: $VENEER_BIN"
echo "acme's store: $KEYS keys x $VALUE_KIB KiB; $WAVES waves of $CONCURRENCY concurrent requests without a token"
echo
echo "| step | server RSS |"
echo "|---|---|"
echo "| started, nothing loaded | $(rss) |"
codes="$WORK/codes"
for wave in $(seq 1 "$WAVES"); do
    curl -s -o /dev/null -X PUT -H "Host: $HOST" -H "Authorization: Bearer $TOKEN" \
        -H 'Content-Type: application/json' -d "{\"value\":\"$wave\"}" "$BASE/v1/kv/wave"
    seq 1 "$CONCURRENCY" | xargs -P "$CONCURRENCY" -I{} \
        curl -s -o /dev/null -w '%{http_code}\n' -H "Host: $HOST" "$BASE/v1/config" >>"$codes"
    echo "| admin write + wave $wave | $(rss) |"
done
curl -s -o /dev/null -H "Host: $HOST" -H "Authorization: Bearer $TOKEN" "$BASE/v1/config"
echo "| acme's own request loads its state | $(rss) |"
echo
echo "flood answers: $(sort "$codes" | uniq -c | awk '{printf "%s x %s  ", $1, $2}')"
