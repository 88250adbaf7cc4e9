#!/usr/bin/env bash
# Builds InfluxDB OSS (influxd) from its Go module into a directory of the project's (.cache/),
# with Go's module and build caches and cargo's registry there too, so that nothing is written
# outside it (the Rust toolchain itself is the machine's, under rustup).
# Usage: build-influxd.sh VERSION CACHE_DIR   (the binary lands in CACHE_DIR/bin/influxd)
#
# influxd links Flux's Rust library (libflux), which Flux's Go build compiles with cargo through
# `pkg-config`: it needs github.com/influxdata/pkg-config first on PATH, and since Flux pins a Rust
# toolchain (rust-toolchain.toml) that may not be installable, RUSTUP_TOOLCHAIN is set to the
# toolchain installed here.
set -euo pipefail

PKG_CONFIG_VERSION=v0.2.7  # github.com/influxdata/pkg-config: builds libflux with cargo

version=${1:?usage: build-influxd.sh VERSION CACHE_DIR}
cache=$(mkdir -p "${2:?usage: build-influxd.sh VERSION CACHE_DIR}" && cd "$2" && pwd)
log="$cache/build.log"
: > "$log"

fail() {
    echo "twin-stream: building InfluxDB $version failed at step: $1" >&2
    echo "  (full log: $log; last lines below)" >&2
    tail -25 "$log" >&2
    exit 1
}

step() {
    local name=$1
    shift
    echo "== $name" >> "$log"
    "$@" >> "$log" 2>&1 || fail "$name"
}

command -v go >/dev/null || { echo "twin-stream: building InfluxDB needs Go (not found)" >&2; exit 1; }
command -v cargo >/dev/null || { echo "twin-stream: building InfluxDB needs cargo (not found)" >&2; exit 1; }

export GOPATH="$cache/gopath" GOMODCACHE="$cache/gopath/pkg/mod" GOCACHE="$cache/gocache"
export GOBIN="$cache/bin" GOFLAGS="-modcacherw -buildvcs=false"
# pkg-config builds libflux inside its module folder (under GOMODCACHE, made writable by
# -modcacherw) and reads the library from libflux/target: no CARGO_TARGET_DIR.
unset CARGO_TARGET_DIR
export CARGO_HOME="$cache/cargo-home"
export PATH="$GOBIN:$PATH"

if [ -z "${RUSTUP_TOOLCHAIN:-}" ] && command -v rustup >/dev/null; then
    # The default toolchain's name, e.g. "stable-x86_64-unknown-linux-gnu"; asked from / so that
    # no rust-toolchain.toml (Flux's pins 1.83) decides it.
    RUSTUP_TOOLCHAIN=$(cd / && rustup default 2>/dev/null | awk '{print $1; exit}')
    [ -n "$RUSTUP_TOOLCHAIN" ] || fail "rustup default (finding the installed Rust toolchain)"
    export RUSTUP_TOOLCHAIN
fi
echo "building InfluxDB $version into $cache (Rust toolchain ${RUSTUP_TOOLCHAIN:-system}; a few minutes)" >&2

step "go install github.com/influxdata/pkg-config@$PKG_CONFIG_VERSION" \
    go install "github.com/influxdata/pkg-config@$PKG_CONFIG_VERSION"
# The release builds stamp the version (the server reports it in X-Influxdb-Version); do the same.
# minicore_disabled: Flux's Snowflake driver would otherwise unpack a native library into a new
# temp dir and ~/.cache/snowflake at every start of the server (Flux's SQL sources are not used).
step "go install github.com/influxdata/influxdb/cmd/influxd@$version (Flux's Rust library via cargo)" \
    go install -tags minicore_disabled \
    -ldflags "-X main.version=${version#v} -X main.branch=$version" \
    "github.com/influxdata/influxdb/cmd/influxd@$version"
# Flux's Snowflake driver makes a credential cache dir at every start (default ~/.cache/snowflake).
export SF_TEMPORARY_CREDENTIAL_CACHE_DIR="$cache/snowflake"
mkdir -p "$SF_TEMPORARY_CREDENTIAL_CACHE_DIR"
step "influxd version (checking the built binary)" "$GOBIN/influxd" version
echo "built $("$GOBIN/influxd" version 2>/dev/null | head -1) at $GOBIN/influxd" >&2
