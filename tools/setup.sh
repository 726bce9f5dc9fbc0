#!/usr/bin/env bash
# Installs what bourse needs on a Debian machine; idempotent, seconds when done before.
set -euo pipefail
cd "$(dirname "$0")/.."

DEBS=(bazel-bootstrap bazel-rules-java bazel-skylib libgtest-dev libb2-dev build-essential
      postgresql redis-server util-linux openssl)
missing=()
for pkg in "${DEBS[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null || PYTHON=python3
stamp=".venv/.lock-$(sha256sum requirements.lock | cut -c1-16)"
if [ ! -e "$stamp" ]; then
  echo "setup: creating .venv from requirements.lock"
  [ -x .venv/bin/python3 ] || "$PYTHON" -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check -r requirements.lock
  rm -f .venv/.lock-*
  touch "$stamp"
fi

# The SDK's dependencies (sdk/pyproject.toml) and its build backend as wheels, pinned by
# the lock: the test that installs the SDK into a fresh virtualenv does so offline from
# here (sdk/tests/test_install.py).
wheels=".tools/wheelhouse"
wheels_stamp="$wheels/.stamp-$(cat requirements.lock sdk/pyproject.toml | sha256sum | cut -c1-16)"
if [ ! -e "$wheels_stamp" ]; then
  echo "setup: downloading the SDK's dependencies into $wheels"
  rm -rf "$wheels" && mkdir -p "$wheels"
  .venv/bin/python -c 'import tomllib; print("\n".join(tomllib.load(open("sdk/pyproject.toml", "rb"))["project"]["dependencies"]))' \
    > .tools/sdk-requirements.txt
  .venv/bin/pip download -q --disable-pip-version-check -d "$wheels" -c requirements.lock \
    -r .tools/sdk-requirements.txt setuptools 2>&1 | grep -v "^WARNING: Location" || true
  touch "$wheels_stamp"
fi

# buf (proto lint and breaking-change checks, tools/buf_check.py) from npm, pinned.
BUF_VERSION=1.75.0
if ! .tools/buf/node_modules/.bin/buf --version 2>/dev/null | grep -qx "$BUF_VERSION"; then
  if ! command -v npm >/dev/null; then
    echo "setup: installing Debian packages: nodejs npm"
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
  fi
  echo "setup: installing buf $BUF_VERSION from npm"
  rm -rf .tools/buf
  npm install --silent --no-audit --no-fund --prefix .tools/buf "@bufbuild/buf@$BUF_VERSION" >/dev/null
fi
