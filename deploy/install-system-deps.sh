#!/usr/bin/env bash
# Installs the Debian packages twin-stream's local stack runs (when root), or names them (when not).
# Usage: install-system-deps.sh PACKAGE...
set -euo pipefail

missing=()
for pkg in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "twin-stream needs these Debian packages: ${missing[*]}" >&2
    echo "install them with: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
fi

echo "installing Debian packages: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# The packages' own init scripts would start system-wide daemons on their default ports;
# the stack runs its own instances, so keep the package scripts from starting anything.
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
if ! apt-get install -y -q --no-install-recommends "${missing[@]}" >/tmp/twin-stream-apt.log 2>&1; then
    apt-get update -q >>/tmp/twin-stream-apt.log 2>&1
    apt-get install -y -q --no-install-recommends "${missing[@]}" >>/tmp/twin-stream-apt.log 2>&1 \
        || { tail -30 /tmp/twin-stream-apt.log >&2; exit 1; }
fi
