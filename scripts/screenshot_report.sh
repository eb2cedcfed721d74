#!/usr/bin/env bash
# Render a report.html in headless Chromium (Debian's `chromium` package) and save a full-page PNG,
# to look at what a reader sees: `scripts/screenshot_report.sh runs/demo/report.html report.png`.
set -euo pipefail
report=${1:?usage: screenshot_report.sh REPORT.html OUT.png [WIDTH]}
out=${2:?usage: screenshot_report.sh REPORT.html OUT.png [WIDTH]}
width=${3:-1200}
command -v chromium >/dev/null || { echo "chromium not found: apt-get install chromium" >&2; exit 2; }
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
# The page is self-contained; the flags keep Chromium from reaching for the network at all.
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$profile" --hide-scrollbars --window-size="$width,3400" \
  --screenshot="$(realpath -m "$out")" "file://$(realpath "$report")" 2>/dev/null
echo "wrote $out"
