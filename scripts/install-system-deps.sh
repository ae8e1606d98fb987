#!/usr/bin/env bash
# System packages the local stack needs: redis-server (Debian package), uv,
# a Java runtime plus Maven for the Kafka broker, promtool (Debian's
# prometheus package) for the tests that check metrics, alert rules and dashboard,
# node and npm to build the web inspector, and Debian's chromium for its browser tests.
# Safe to run repeatedly: only what is missing gets installed.
set -euo pipefail

log() { printf '[install-system-deps] %s\n' "$*"; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        log "need root (or sudo) to run: $*"
        exit 1
    fi
}

if command -v redis-server >/dev/null 2>&1; then
    log "redis-server present: $(redis-server --version | head -n1 || true)"
else
    log "installing redis-server with apt-get"
    as_root apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server
    # The Debian package starts a system-wide Redis on 6379; the stack runs its
    # own Redis as a child process, so stop the service if it was started.
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet redis-server 2>/dev/null; then
        as_root systemctl disable --now redis-server || true
    elif command -v service >/dev/null 2>&1 && service redis-server status >/dev/null 2>&1; then
        as_root service redis-server stop || true
    fi
fi

if command -v uv >/dev/null 2>&1; then
    log "uv present: $(uv --version)"
else
    log "installing uv with pip"
    python3 -m pip install --quiet uv \
        || python3 -m pip install --quiet --user --break-system-packages uv
    export PATH="$HOME/.local/bin:$PATH"
    command -v uv >/dev/null 2>&1 || { log "uv installed but not on PATH (add ~/.local/bin)"; exit 1; }
fi

# Java 17+ and Maven come with the development image; a bare machine gets them
# from Debian's packages.
need_apt=()
command -v java >/dev/null 2>&1 || need_apt+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || need_apt+=(maven)
if [ ${#need_apt[@]} -gt 0 ]; then
    log "installing ${need_apt[*]} with apt-get"
    as_root apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need_apt[@]}"
fi
log "java present: $(java -version 2>&1 | head -n1 || true)"
log "maven present: $(mvn -B -v 2>/dev/null | head -n1 || true)"

# promtool checks /metrics output, the alert rules and the dashboard's queries in the
# tests. Debian ships it in the prometheus package, whose server the stack does not
# use: stop it if the package started one.
if command -v promtool >/dev/null 2>&1; then
    log "promtool present: $(promtool --version 2>&1 | head -n1 || true)"
else
    log "installing prometheus (for promtool) with apt-get"
    as_root apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
        as_root systemctl disable --now prometheus || true
    elif command -v service >/dev/null 2>&1 && service prometheus status >/dev/null 2>&1; then
        as_root service prometheus stop || true
    fi
    command -v promtool >/dev/null 2>&1 || { log "promtool not found after installing prometheus"; exit 1; }
fi

# The web inspector (ui/) builds with node and npm; its tests drive Debian's chromium
# through Playwright, which never downloads a browser of its own.
need_apt=()
command -v node >/dev/null 2>&1 || need_apt+=(nodejs)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
if [ ${#need_apt[@]} -gt 0 ]; then
    log "installing ${need_apt[*]} with apt-get"
    as_root apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need_apt[@]}"
fi
log "node present: $(node --version 2>/dev/null || true), npm $(npm --version 2>/dev/null || true)"
log "chromium present: $(chromium --version 2>/dev/null | head -n1 || true)"
