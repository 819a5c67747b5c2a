#!/usr/bin/env bash
# Provides tansu, an Apache-Kafka-compatible broker written in Rust, for the
# Kafka sink tests (make test-kafka): Debian ships Kafka clients but no
# broker, and tansu is the one that installs from crates.io alone.
#
#   scripts/fetch-tansu.sh     # prints the path of the tansu binary
#
# The binary is installed once under $CARGO_TARGET_DIR (else target/)/tansu,
# with the build directory kept beside it, and reused while it is there: a
# cold build is about 400 crates (~20 min on 2 cores), so only the first run
# on a machine pays for it. The dynostore feature carries the in-memory
# storage engine the tests use. Progress goes to stderr; exit status 1 if the
# binary could not be provided.
set -euo pipefail

VERSION=0.6.0
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}
root=$target/tansu
bin=$root/bin/tansu

if [ ! -x "$bin" ] || ! "$bin" --version 2>/dev/null | grep -qF "$VERSION"; then
    echo "fetch-tansu: cargo install tansu $VERSION into $root (the first time takes ~20 min)" >&2
    cargo install tansu --version "$VERSION" --features dynostore --locked \
        --root "$root" --target-dir "$root/build" >&2 ||
        { echo "fetch-tansu: cargo install tansu failed" >&2; exit 1; }
fi
echo "$bin"
