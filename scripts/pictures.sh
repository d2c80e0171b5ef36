#!/usr/bin/env bash
# The README's pictures, from a real demo run: `incident-bot demo --html` writes the conversation as a page,
# headless Chromium photographs (1) the incident card and (2) the MTTR summary alone (`?only=card`,
# `?only=summary`, the window sized to the message), and (3) the digest chart is the PNG the bot uploaded
# (`demo --keep`). Output: docs/img/card.png, docs/img/summary.png, docs/img/digest-chart.png.
# Installs Debian's chromium and an emoji font when missing (as root or with sudo).
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then SUDO="sudo"; fi
BROWSER=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$BROWSER" ] || [ ! -e /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf ]; then
  echo "== installing Chromium and an emoji font from Debian's packages"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium fonts-noto-color-emoji >/dev/null
  BROWSER=$(command -v chromium || command -v chromium-browser)
fi

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
WIDTH=760

echo "== running the demo"
cargo run --quiet -- demo --keep "$WORK/kept" --html "$WORK/demo.html" >"$WORK/demo.txt"

chrome() {
  "$BROWSER" --headless --no-sandbox --disable-gpu --no-first-run --hide-scrollbars \
    --user-data-dir="$WORK/profile" --virtual-time-budget=5000 "$@" 2>/dev/null
}

mkdir -p docs/img
for name in card summary; do
  # The page measures the message shown alone (`?only=…&check` writes its height into #check) …
  height=$(chrome --window-size="$WIDTH,2000" --dump-dom "file://$WORK/demo.html?only=$name&check" |
    grep -o 'data-height="[0-9]*"' | grep -o '[0-9]*')
  if [ -z "$height" ]; then
    echo "no message '$name' in the page" >&2
    exit 1
  fi
  # … then a window of exactly that size is photographed.
  chrome --window-size="$WIDTH,$((height + 8))" --screenshot="$WORK/$name.png" "file://$WORK/demo.html?only=$name"
  cp "$WORK/$name.png" "docs/img/$name.png"
  echo "docs/img/$name.png (${WIDTH}x$((height + 8)))"
done
cp "$WORK/kept/digest-chart.png" docs/img/digest-chart.png
echo "docs/img/digest-chart.png"
