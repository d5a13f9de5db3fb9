#!/usr/bin/env bash
# Installs Chromium for the dashboard's browser test and tmux for the
# command's terminal test, unless they are there.
#
# Both tests fail, rather than skip, without their program, so `make test`
# runs this first. It looks for the same names the tests do;
# DDBTRACK_CHROMIUM, which points the browser test at a binary of your
# choice, skips Chromium's install. Only Debian's packages are installed
# automatically: elsewhere it says what to do instead.
set -euo pipefail

pkgs=()
if [ -z "${DDBTRACK_CHROMIUM:-}" ]; then
	found=
	for name in chromium chromium-browser google-chrome google-chrome-stable; do
		if command -v "$name" >/dev/null; then
			found=1
			break
		fi
	done
	[ -n "$found" ] || pkgs+=(chromium)
fi
command -v tmux >/dev/null || pkgs+=(tmux)
if [ ${#pkgs[@]} -eq 0 ]; then
	exit 0
fi
if ! command -v apt-get >/dev/null; then
	echo "Missing ${pkgs[*]} and no apt-get to install them: install them, or set DDBTRACK_CHROMIUM to a Chromium or Chrome" >&2
	exit 1
fi
sudo=
if [ "$(id -u)" != 0 ]; then
	sudo=sudo
fi
echo "==> Installing Debian's ${pkgs[*]} for the browser and terminal tests"
$sudo apt-get update
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${pkgs[@]}"
