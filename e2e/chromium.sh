#!/usr/bin/env bash
# Makes headless Chromium available for the operator page's browser tests
# (e2e/browser_test.go), from Debian's package `chromium` when it is missing;
# `make test` and `make screenshots` call it.
#   chromium.sh ensure   find Chromium ($CHROMIUM_BIN, else chromium or
#                        chromium-browser on PATH), installing Debian's
#                        package with apt-get (as root, or with sudo) when
#                        there is none; prints the binary's path on stdout,
#                        diagnostics on stderr
# apt's lock may be held by another install (of chromium, say): apt-get
# waits for it, and a failed try is retried while the lock was the reason.
set -euo pipefail

say() { echo "e2e/chromium.sh: $*" >&2; }

found() { # prints the Chromium to use, or nothing
	if [ -n "${CHROMIUM_BIN:-}" ]; then
		echo "$CHROMIUM_BIN"
		return 0
	fi
	command -v chromium 2>/dev/null || command -v chromium-browser 2>/dev/null || true
}

# as_root runs its arguments as root: directly, or with sudo when that works
# without a password; fails with the reason otherwise.
as_root() {
	if [ "$(id -u)" = 0 ]; then
		"$@"
	elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
		sudo -n "$@"
	else
		say "installing chromium needs root (or sudo without a password); install Debian's package chromium yourself, or set CHROMIUM_BIN"
		return 1
	fi
}

# apt_try runs one apt-get command, waiting up to 5 minutes for the lock;
# its output goes to stderr and, for lock_held, to $state.
apt_try() {
	as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 "$@" 2>&1 | tee "$state" >&2
}

lock_held() { grep -qiE 'could not get lock|unable to lock|is held by|lock-frontend' "$state"; }

install_chromium() {
	command -v apt-get >/dev/null || { say "no apt-get here: install Chromium yourself and set CHROMIUM_BIN"; return 1; }
	state=$(mktemp)
	trap 'rm -f "$state"' RETURN
	local try
	for try in 1 2 3 4 5 6; do
		# Another helper may have installed it while this one waited.
		[ -n "$(found)" ] && return 0
		say "installing Debian's package chromium (try $try)"
		if apt_try update -qq && apt_try install -y -qq --no-install-recommends chromium; then
			return 0
		fi
		lock_held || { say "apt-get failed (see above)"; return 1; }
		say "apt's lock is held by another install; retrying in 20 s"
		sleep 20
	done
	say "apt's lock stayed held; giving up"
	return 1
}

ensure() {
	local bin
	bin=$(found)
	if [ -z "$bin" ]; then
		install_chromium
		bin=$(found)
	fi
	if [ -z "$bin" ]; then
		say "no chromium found after installing; set CHROMIUM_BIN to a Chromium or Chrome binary"
		exit 1
	fi
	if [ ! -x "$bin" ]; then
		say "$bin is not an executable file (CHROMIUM_BIN?)"
		exit 1
	fi
	if ! version=$("$bin" --headless --no-sandbox --version 2>/dev/null); then
		say "$bin does not run: $("$bin" --headless --no-sandbox --version 2>&1 | tail -n 3)"
		exit 1
	fi
	say "$version ($bin)"
	echo "$bin"
}

case "${1:-}" in
ensure) ensure ;;
*) echo "usage: $0 ensure" >&2; exit 2 ;;
esac
