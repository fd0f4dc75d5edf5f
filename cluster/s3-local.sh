#!/usr/bin/env bash
# A local S3 API server (moto) on 127.0.0.1, for trying `s3://` stores without a cloud account; the tests and
# the README use it.
#
#   eval "$(bash cluster/s3-local.sh start)"   # start; prints the export lines a shell needs (endpoint, test credentials)
#   bash cluster/s3-local.sh stop
#
# `start` also creates the bucket SEISGRID_S3_BUCKET (default "seisgrid"): s3://seisgrid/... is ready to use.
# SEISGRID_S3_PORT (default 5555) picks the port, SEISGRID_S3_FAULT_RATE (default 0) makes that share of the
# requests fail (HTTP 500/503, dropped connections; cluster/s3_server.py), for trying how a run copes.
# moto keeps everything in memory: stop it and the buckets are gone. Never real data.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dir="${SEISGRID_S3_DIR:-/tmp/seisgrid-s3}"
port="${SEISGRID_S3_PORT:-5555}"
python="${PYTHON:-python3}"
[ -x "$here/../.venv/bin/python" ] && [ -z "${PYTHON:-}" ] && python="$here/../.venv/bin/python"

exports() {
    echo "export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-1"
    echo "export SEISGRID_STORAGE__S3__ENDPOINT_URL=http://127.0.0.1:$port"
}

start() {
    mkdir -p "$dir"
    if [ -f "$dir/server.pid" ] && kill -0 "$(cat "$dir/server.pid")" 2>/dev/null; then
        exports
        return
    fi
    if ! "$python" -c "import moto.server" 2>/dev/null; then
        echo "s3-local: moto[server] is not installed for $python (pip install 'moto[server]')" >&2
        exit 1
    fi
    nohup "$python" "$here/s3_server.py" --port "$port" --fault-rate "${SEISGRID_S3_FAULT_RATE:-0}" \
        >"$dir/server.log" 2>&1 &
    echo $! >"$dir/server.pid"
    for _ in $(seq 1 100); do
        if "$python" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/_faults', timeout=1)" \
            2>/dev/null; then
            "$python" - "$port" "${SEISGRID_S3_BUCKET:-seisgrid}" <<'PY' || { echo "s3-local: could not create the bucket" >&2; exit 1; }
import sys, urllib.request
port, bucket = sys.argv[1], sys.argv[2]
# moto accepts any credentials; an unsigned PUT of the bucket is enough
urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/{bucket}", method="PUT"), timeout=10)
PY
            echo "s3-local: S3 API server on http://127.0.0.1:$port, bucket s3://${SEISGRID_S3_BUCKET:-seisgrid} (log $dir/server.log)" >&2
            exports
            return
        fi
        kill -0 "$(cat "$dir/server.pid")" 2>/dev/null || break
        sleep 0.1
    done
    tail -n 20 "$dir/server.log" >&2
    echo "s3-local: the server did not start" >&2
    exit 1
}

stop() {
    if [ -f "$dir/server.pid" ]; then
        kill "$(cat "$dir/server.pid")" 2>/dev/null || true
        rm -f "$dir/server.pid"
    fi
    echo "s3-local: stopped" >&2
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
