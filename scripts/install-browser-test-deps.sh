#!/usr/bin/env bash
# Installs what the chat page's browser test needs (crates/cli/tests/chat_page.rs): Debian's
# `chromium` and `chromium-driver` (chromedriver, the W3C WebDriver server the test drives it
# through). Idempotent and quiet: does nothing when both are there. Needs apt-get (as root, or
# through sudo). Prints the two paths on stdout.
set -euo pipefail

chromium="${ZOO_CHROMIUM:-/usr/bin/chromium}"
chromedriver="${ZOO_CHROMEDRIVER:-/usr/bin/chromedriver}"

if [ -x "$chromium" ] && [ -x "$chromedriver" ]; then
  echo "present: $chromium, $chromedriver" >&2
else
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq >/dev/null
  $sudo apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
fi
echo "$chromium"
echo "$chromedriver"
