#!/usr/bin/env bash
# /healthz while template bombs are rendered (docs/performance.md, "Template
# bombs"): initech (of the dev demo, on the declarative-overrides plugin) gets
# email templates built to explode — nested range() loops, instruction-heavy
# loops, value-building operators, recursive macros — and CONCURRENCY clients
# preview them in a loop for SECONDS, as a tenant member may. Meanwhile, and
# before on an idle server, /healthz is asked SAMPLES times one after another.
# Prints the median and p99 of /healthz idle, under ordinary previews and under
# bombs, the ratio bombs / ordinary, and how the previews were answered (each
# should be a 200; the bombs' with the base template).
#
# A server that renders templates on its async workers without fuel freezes
# every route while a bomb renders; one that bounds rendering and runs it on a
# blocking thread under the tenant's plugin slot keeps /healthz where the same
# load of ordinary previews (another tenant's, measured in the same run) has it.
#
# Usage: benches/bombs.sh
#   env: VENEER_BIN=<a built veneer> (default: build release into CARGO_TARGET_DIR)
#        CONCURRENCY=8 SECONDS=10 SAMPLES=300 PORT=18491
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CONCURRENCY=${CONCURRENCY:-8}
SECONDS_UNDER_LOAD=${SECONDS:-10}
SAMPLES=${SAMPLES:-300}
PORT=${PORT:-18491}
BASE="http://127.0.0.1:$PORT"
HOST="initech.localhost"

if [ -z "${VENEER_BIN:-}" ]; then
    export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/veneer-bench}
    echo "building veneer (release) in $CARGO_TARGET_DIR ..." >&2
    (cd "$ROOT" && cargo build --release -p veneer --features demo-plugins --bin veneer >&2)
    VENEER_BIN="$CARGO_TARGET_DIR/release/veneer"
fi

WORK=$(mktemp -d)
SERVER_PID=
LOADERS=()
cleanup() {
    for pid in "${LOADERS[@]}"; do kill "$pid" 2>/dev/null || true; done
    if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

RUST_LOG=warn "$VENEER_BIN" serve --dev --listen "127.0.0.1:$PORT" \
    --database-url "sqlite://$WORK/veneer.db" --artifact-dir "$WORK/artifacts" \
    >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 300); do
    curl -sf "$BASE/healthz" >/dev/null 2>&1 && break
    sleep 0.1
done
curl -sf "$BASE/healthz" >/dev/null || { echo "the server did not start:" >&2; cat "$WORK/server.log" >&2; exit 1; }

ADMIN=$("$VENEER_BIN" dev-token --tenant initech --role admin)
MEMBER=$("$VENEER_BIN" dev-token --tenant initech --role member)
replace() { printf '[{"op": "replace", "path": "/subject", "value": "%s"}]' "$1"; }
# The bombs only rendering reveals (the template checks refuse a release with
# the others, such as `'x' * 100000000` or a recursive macro, when it is made).
SETTINGS=$(cat <<JSON
{"email": {
  "welcome": $(replace '{% for a in range(100000) %}{% for b in range(100000) %}x{% endfor %}{% endfor %}'),
  "order-confirmation": $(replace '{% for a in range(1000) %}{% for b in range(1000) %}{% for c in range(1000) %}{% if c == -1 %}x{% endif %}{% endfor %}{% endfor %}{% endfor %}')
}}
JSON
)
# A release of initech's installation with its plugin and the bombs, made live.
SHA=$(curl -fsS -H "Host: $HOST" -H "Authorization: Bearer $ADMIN" "$BASE/v1/installations/overrides" |
    sed -n 's/.*"plugin":"\([0-9a-f]*\)".*/\1/p' | head -1)
status=$(curl -s -o "$WORK/settings.out" -w '%{http_code}' -X POST -H "Host: $HOST" \
    -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' \
    -d "{\"plugin\": \"$SHA\", \"settings\": $SETTINGS}" "$BASE/v1/installations/overrides/releases")
[ "$status" = 201 ] || { echo "the release with the bombs was refused: $status $(cat "$WORK/settings.out")" >&2; exit 1; }
RELEASE=$(sed -n 's/.*"id":\([0-9]*\).*/\1/p' "$WORK/settings.out" | head -1)
curl -fsS -o /dev/null -X POST -H "Host: $HOST" -H "Authorization: Bearer $ADMIN" \
    "$BASE/v1/installations/overrides/releases/$RELEASE/activate"

# /healthz latencies in ms, one after another, into $1.
probe() {
    for _ in $(seq 1 "$SAMPLES"); do
        curl -s -o /dev/null -m 60 -w '%{time_total}\n' "$BASE/healthz" || echo 60
    done | awk '{printf "%.3f\n", $1 * 1000}' | sort -n >"$1"
}
pct() { awk -v p="$2" '{v[NR]=$1} END {i=int(NR*p); if (i<1) i=1; print v[i]}' "$1"; }

# CONCURRENCY clients previewing templates of tenant $1 (token $2) in a loop for
# SECONDS_UNDER_LOAD, answers into $WORK/$3.*, while /healthz is probed into $WORK/$3.
under_load() {
    local host=$1 token=$2 name=$3
    for i in $(seq 1 "$CONCURRENCY"); do
        (
            templates=(welcome order-confirmation)
            end=$((SECONDS + SECONDS_UNDER_LOAD))
            n=0
            while [ "$SECONDS" -lt "$end" ]; do
                t=${templates[$((n % 4))]}
                curl -s -o /dev/null -m 60 -w '%{http_code}\n' -X POST -H "Host: $host" \
                    -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
                    -d "{\"template\": \"$t\"}" "$BASE/v1/email/preview" >>"$WORK/$name.answers.$i"
                n=$((n + 1))
            done
        ) &
        LOADERS+=($!)
    done
    sleep 1
    probe "$WORK/$name"
    for pid in "${LOADERS[@]}"; do wait "$pid" || true; done
    LOADERS=()
}

probe "$WORK/idle"
# The baseline under the same load: globex previews its ordinary templates.
under_load globex.localhost "$("$VENEER_BIN" dev-token --tenant globex --role member)" plain
under_load "$HOST" "$MEMBER" bombs

echo "veneer: $VENEER_BIN"
echo "$CONCURRENCY clients previewing for ${SECONDS_UNDER_LOAD}s per phase; $SAMPLES sequential /healthz per phase"
echo
echo "| phase | /healthz p50 | p99 | previews answered |"
echo "|---|---|---|---|"
answers() { cat "$WORK"/"$1".answers.* | sort | uniq -c | awk '{printf "%s x %s ", $1, $2}'; }
echo "| idle | $(pct "$WORK/idle" 0.5) ms | $(pct "$WORK/idle" 0.99) ms | |"
echo "| ordinary templates (globex) | $(pct "$WORK/plain" 0.5) ms | $(pct "$WORK/plain" 0.99) ms | $(answers plain)|"
echo "| template bombs (initech) | $(pct "$WORK/bombs" 0.5) ms | $(pct "$WORK/bombs" 0.99) ms | $(answers bombs)|"
echo
awk -v a="$(pct "$WORK/bombs" 0.5)" -v b="$(pct "$WORK/plain" 0.5)" \
    -v c="$(pct "$WORK/bombs" 0.99)" -v d="$(pct "$WORK/plain" 0.99)" \
    'BEGIN {printf "/healthz under bombs / under ordinary previews: p50 %.2f, p99 %.2f\n", a / b, c / d}'
