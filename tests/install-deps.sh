#!/usr/bin/env bash
# Installs the Debian packages kvd builds and tests with, when any is missing, and the
# npm packages of redis-compat-tests/. Safe to run again: it only installs what is absent.
set -euo pipefail

pkgs=(gcc make pkg-config clang libclang-rt-dev valgrind
      libevent-dev libhiredis-dev libjemalloc-dev libxxhash-dev
      redis-tools redis-server python3-redis rocksdb-tools nodejs npm iptables)

missing=()
for p in "${pkgs[@]}"; do
    st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    [[ "$st" == *"ok installed"* ]] || missing+=("$p")
done
# node and npm may come from outside Debian (already on PATH): then keep them.
if command -v node >/dev/null && command -v npm >/dev/null; then
    missing=("${missing[@]/nodejs}"); missing=("${missing[@]/npm}")
fi
read -r -a missing <<<"${missing[*]:-}"

if (( ${#missing[@]} )); then
    echo "install-deps: installing ${missing[*]}"
    sudo=""; [[ $(id -u) -eq 0 ]] || sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The Debian redis-server package may start a system instance on 6379; kvd's
# `make run` wants that port, and the tests start their own redis-server.
if command -v systemctl >/dev/null && systemctl is-active --quiet redis-server 2>/dev/null; then
    sudo=""; [[ $(id -u) -eq 0 ]] || sudo="sudo"
    $sudo systemctl stop redis-server || true
    $sudo systemctl disable redis-server >/dev/null 2>&1 || true
fi

if [[ -f redis-compat-tests/package.json && ! -d redis-compat-tests/node_modules ]]; then
    echo "install-deps: npm ci in redis-compat-tests"
    (cd redis-compat-tests && npm ci --no-audit --no-fund --loglevel=error)
fi
