#!/usr/bin/env bash
# Set up zenpro-local on this machine and start the daemon in the background.
#
# Usage: scripts/install-and-run.sh [--runtime docker|process] [serve flags]
#
# Installs what is missing (Python venv, the package with Caddy, the Docker
# engine and tenant image for the docker runtime, *.localhost name
# resolution), then starts `zenpro-local serve` with the given flags and
# waits until it answers. Defaults: Docker runtime, HTTPS on port 8443, data
# in $ZENPRO_DATA_DIR or ~/.local/share/zenpro-local.
set -euo pipefail
source "$(dirname "$0")/setup.sh"

RUNTIME=docker
SERVE_FLAGS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --runtime) RUNTIME="$2"; shift 2 ;;
        --runtime=*) RUNTIME="${1#*=}"; shift ;;
        *) SERVE_FLAGS+=("$1"); shift ;;
    esac
done
case " ${SERVE_FLAGS[*]:-} " in
    *" --https-port"*) ;;
    *) SERVE_FLAGS+=(--https-port 8443) ;;
esac
SERVE_FLAGS+=(--runtime "$RUNTIME")

check_python
ensure_localhost_names
ensure_venv
if [ "$RUNTIME" = docker ]; then
    ensure_docker
    ensure_tenant_image "${SERVE_FLAGS[@]}"
fi

DATA_DIR="$("$VENV/bin/zenpro-local" settings --json "${SERVE_FLAGS[@]}" |
    "$VENV/bin/python" -c 'import json,sys; print({s["name"]: s["value"] for s in json.load(sys.stdin)}["data_dir"])')"
LISTEN="$("$VENV/bin/zenpro-local" settings --json "${SERVE_FLAGS[@]}" |
    "$VENV/bin/python" -c 'import json,sys; print({s["name"]: s["value"] for s in json.load(sys.stdin)}["listen"])')"
mkdir -p "$DATA_DIR"

if [ -f "$DATA_DIR/daemon.pid" ] && kill -0 "$(cat "$DATA_DIR/daemon.pid")" 2>/dev/null; then
    say "zenpro-local already runs (pid $(cat "$DATA_DIR/daemon.pid"))"
else
    say "Starting zenpro-local (log: $DATA_DIR/daemon.log)"
    setsid "$VENV/bin/zenpro-local" serve "${SERVE_FLAGS[@]}" \
        >>"$DATA_DIR/daemon.log" 2>&1 </dev/null &
    echo $! >"$DATA_DIR/daemon.pid"
fi

for _ in $(seq 1 120); do
    if curl -fsS "http://$LISTEN/health" >/dev/null 2>&1; then
        cat <<TEXT

zenpro-local is running: admin API at http://$LISTEN (docs: http://$LISTEN/docs)
Admin API key:   $DATA_DIR/admin-token
Log:             $DATA_DIR/daemon.log
Stop it with:    kill \$(cat $DATA_DIR/daemon.pid)

Next: create an organization and a tenant:
  export ZENPRO_DATA_DIR=$DATA_DIR ZENPRO_URL=http://$LISTEN PATH=$VENV/bin:\$PATH
  zenpro-local org create acme
  zenpro-local tenant create acme alpha --wait
TEXT
        exit 0
    fi
    if ! kill -0 "$(cat "$DATA_DIR/daemon.pid")" 2>/dev/null; then
        echo "error: zenpro-local exited; the end of its log:" >&2
        tail -n 20 "$DATA_DIR/daemon.log" >&2
        exit 1
    fi
    sleep 0.5
done
echo "error: timed out: zenpro-local did not respond to /health within 60 s; see $DATA_DIR/daemon.log" >&2
exit 1
