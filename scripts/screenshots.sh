#!/usr/bin/env bash
# Regenerates the README's screenshots in docs/img/ from the real thing, not by hand:
#   1. `rooster sim` starts the simulators with their sample rota (src/commands/sim.rs) and
#      writes a config pointing at them; the page is switched on with `[web] listen`;
#   2. `rooster once` runs a cycle against them, then `rooster run` serves the status page;
#   3. Debian's headless Chromium screenshots the page at a desktop and a phone width;
#   4. `rooster coverage --queue 700` prints its grid and gaps, which are put as they are
#      (HTML-escaped) into a <pre> page in a monospace font and screenshotted the same way.
# Everything listens on 127.0.0.1 and lives in a temporary directory; Chromium gets a fresh
# profile, no proxy and no name resolution. Needs /usr/bin/chromium (apt-get install
# chromium) and builds the release binary. Usage: scripts/screenshots.sh
set -euo pipefail
cd "$(dirname "$0")/.."

chromium=/usr/bin/chromium
if [ ! -x "$chromium" ]; then
    echo "screenshots: $chromium not found (apt-get install chromium)" >&2
    exit 2
fi
cargo build --release --locked --quiet
rooster="${CARGO_TARGET_DIR:-target}/release/rooster"
out=docs/img
mkdir -p "$out"

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
unset HTTP_PROXY HTTPS_PROXY ALL_PROXY http_proxy https_proxy all_proxy

# Waits up to 20 s for a file to hold a line matching a pattern.
wait_for() {
    for _ in $(seq 200); do
        if [ -f "$1" ] && grep -q "$2" "$1"; then return 0; fi
        sleep 0.1
    done
    echo "screenshots: gave up waiting for '$2' in $1:" >&2
    cat "$1" >&2 || true
    exit 1
}

# 1. The simulators on free ports, and their config with the page on.
"$rooster" sim --tring 127.0.0.1:0 --graph 127.0.0.1:0 --write-config "$work/rooster.toml" \
    >"$work/sim.log" 2>&1 &
pids+=($!)
wait_for "$work/sim.log" "config written"
printf '\n[web]\nlisten = "127.0.0.1:0"\n' >>"$work/rooster.toml"
export ROOSTER_CONFIG="$work/rooster.toml"

# 2. One cycle (exit 1 is "something was refused or failed": still a state to show), then
#    the daemon for its page.
"$rooster" once >"$work/once.log" 2>&1 || [ $? -eq 1 ]
"$rooster" --log-format json run >"$work/run.log" 2>&1 &
pids+=($!)
wait_for "$work/run.log" '"message":"status page on /"'
addr=$(sed -n 's/.*"message":"status page on \/".*"addr":"\(127\.0\.0\.1:[0-9]*\)".*/\1/p' \
    "$work/run.log" | head -n 1)
if [ -z "$addr" ]; then
    echo "screenshots: no page address in the daemon's log:" >&2
    cat "$work/run.log" >&2
    exit 1
fi

shoot() { # URL WIDTH,HEIGHT FILE
    timeout -k 5 60 "$chromium" --headless --no-sandbox --disable-gpu --disable-quic \
        --no-first-run --disable-background-networking --disable-component-update \
        --disable-sync --disable-breakpad --no-proxy-server --hide-scrollbars \
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1" \
        --user-data-dir="$work/profile" --window-size="$2" --screenshot="$3" "$1" \
        >>"$work/chromium.log" 2>&1
    [ -s "$3" ] || { echo "screenshots: chromium wrote no $3" >&2; tail "$work/chromium.log" >&2; exit 1; }
}

# 3. The page.
# Desktop: tall enough for both queues of the sample config and their gaps.
shoot "http://$addr/" 1280,1400 "$out/status-page-desktop.png"
shoot "http://$addr/" 390,844 "$out/status-page-phone.png"

# 4. `rooster coverage`, as a terminal 100 columns wide would show it.
"$rooster" coverage --queue 700 >"$work/coverage.txt" || [ $? -eq 1 ]
{
    printf '<!DOCTYPE html><meta charset="utf-8"><title>rooster coverage</title>\n'
    printf '<style>body{margin:0;background:#1d1f21;color:#d8d8d8}'
    printf 'pre{font:14px/1.35 "DejaVu Sans Mono",monospace;margin:0;padding:10px 14px;'
    printf 'width:100ch;white-space:pre-wrap}.prompt{color:#8fbf7f}</style>\n'
    printf '<pre><span class="prompt">$</span> rooster coverage --queue 700\n'
    sed -e 's/&/\&amp;/g' -e 's/</\&lt;/g' -e 's/>/\&gt;/g' "$work/coverage.txt"
    printf '</pre>\n'
} >"$work/coverage.html"
# Tall enough for every line (and the legend wrapped onto a second one), no taller.
lines=$(($(wc -l <"$work/coverage.txt") + 2))
shoot "file://$work/coverage.html" "$((100 * 85 / 10 + 30)),$((lines * 19 + 20))" \
    "$out/coverage.png"

ls -l "$out"/*.png
