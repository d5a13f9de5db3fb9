#!/usr/bin/env bash
# Installs Chromium for the dashboard's browser test, unless one is there.
#
# The test drives headless Chromium and fails, rather than skips, without
# one, so `make test` runs this first. It looks for the same names the test
# does; DDBTRACK_CHROMIUM, which points the test at a binary of your
# choice, skips the install altogether. Only Debian's package is installed
# automatically: elsewhere it says what to do instead.
set -euo pipefail

if [ -n "${DDBTRACK_CHROMIUM:-}" ]; then
	exit 0
fi
for name in chromium chromium-browser google-chrome google-chrome-stable; do
	if command -v "$name" >/dev/null; then
		exit 0
	fi
done
if ! command -v apt-get >/dev/null; then
	echo "No Chromium on PATH and no apt-get to install it: install Chromium or Chrome, or set DDBTRACK_CHROMIUM to one" >&2
	exit 1
fi
sudo=
if [ "$(id -u)" != 0 ]; then
	sudo=sudo
fi
echo "==> Installing Debian's chromium for the dashboard's browser test"
$sudo apt-get update
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium
