#!/usr/bin/env bash
# Fails when a layer gains a dependency its architecture invariant forbids (see ARCHITECTURE.md).
set -euo pipefail
cd "$(dirname "$0")/.."

failed=0
fail() { echo "wall broken: $*" >&2; failed=1; }

# The core does no I/O and knows no web, SQL, bus or JSON wire crate.
forbidden_in_core='^(tokio|mio|axum|hyper|tower|reqwest|rusqlite|libsqlite3-sys|sqlx|redis|async-nats|serde_json|tungstenite|tokio-tungstenite|socketioxide) '
if cargo tree -p switchboard-core -e normal --prefix none | sort -u | grep -E "$forbidden_in_core"; then
  fail "switchboard-core depends on an I/O, web or wire-format crate (listed above)"
fi

# Only the store knows SQL drivers; only the server knows axum/HTTP serving.
for manifest in crates/*/Cargo.toml; do
  crate=$(basename "$(dirname "$manifest")")
  deps=$(sed -n '/^\[dependencies\]/,/^\[/p' "$manifest")
  if [ "$crate" != store ] && grep -Eq '^(rusqlite|sqlx)' <<<"$deps"; then
    fail "$crate depends on a SQL driver; only crates/store may"
  fi
  if [ "$crate" != server ] && [ "$crate" != loadgen ] && grep -Eq '^axum' <<<"$deps"; then
    fail "$crate depends on axum; only crates/server may"
  fi
  if [ "$crate" != bus ] && grep -Eq '^(redis|async-nats)' <<<"$deps"; then
    fail "$crate depends on a bus client; only crates/bus may"
  fi
done

# Dialects go through the engine: never the store or the bus.
if grep -rnE 'switchboard_(store|bus)' crates/server/src/dialects; then
  fail "a dialect uses the store or the bus directly (listed above)"
fi

if [ "$failed" -ne 0 ]; then
  exit 1
fi
echo "walls hold"
