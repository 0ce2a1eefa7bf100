#!/usr/bin/env bash
# Install Trino 476 into the cache (~/.cache/lakehouse/trino/476, or $LAKEHOUSE_TRINO_HOME)
# before the tests. `./dev test` (and so CI) runs every scripts/setup-*.sh first. The
# first run downloads ~550 MB with Maven; later runs find the cache and return at once.
# Fails loudly when the install fails; a missing Java 24+ fails in CI (CI=true) and only
# warns elsewhere (the Trino tests then skip).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${LAKEHOUSE_VENV:-$PWD/.venv}"

log() { printf '\033[1m[setup-trino]\033[0m %s\n' "$*" >&2; }
in_ci() { case "${CI:-}" in 1 | true | TRUE | True | yes) return 0 ;; *) return 1 ;; esac; }

if [ ! -x "$VENV/bin/lakehouse" ]; then
    log "ERROR: $VENV/bin/lakehouse is missing; run ./dev setup first (or set LAKEHOUSE_VENV)"
    exit 1
fi

if ! command -v mvn >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        log "installing Maven from Debian packages (Trino is fetched by Maven coordinates)"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq maven >/dev/null
    else
        log "ERROR: Maven (mvn) is needed to download Trino: install it (apt-get install maven)"
        exit 1
    fi
fi

java_report=$("$VENV/bin/python" - <<'PY' 2>&1
from lakehouse.trino_server import TrinoError, find_java

try:
    java = find_java()
except TrinoError as exc:
    print(exc)
    raise SystemExit(1) from None
print(f"Java {java.version} at {java.home} (found via {java.source})")
PY
) && java_ok=1 || java_ok=0
if [ "$java_ok" = 1 ]; then
    log "Trino will run on $java_report"
elif in_ci; then
    log "ERROR: $java_report"
    exit 1
else
    log "WARNING: $java_report"
    log "WARNING: the Trino tests will be skipped until a Java 24+ is installed"
fi

log "installing Trino 476 (cached after the first run)"
if ! "$VENV/bin/lakehouse" trino install; then
    log "ERROR: installing Trino failed; see the messages above"
    exit 1
fi
