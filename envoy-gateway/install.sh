#!/usr/bin/env bash
# Finds or builds the Envoy Gateway binary (standalone mode: File resources,
# Host infrastructure) that the Envoy Gateway end-to-end test drives, and prints
# its path on stdout (diagnostics go to stderr). Order:
#   1. $ENVOY_GATEWAY_BIN, if set (must be executable);
#   2. .tools/bin/envoy-gateway, if it was built from the pin in
#      envoy-gateway/VERSION;
#   3. otherwise build it from the Go module proxy:
#      go install github.com/envoyproxy/gateway/cmd/envoy-gateway@<pin>
#      into .tools/bin (the module has no replace directives, so `go install
#      pkg@version` builds it with its own go.mod; nothing in this repository's
#      go.mod is touched). Cold caches: ~4-5 min on 2 cores, ~770 MB of module
#      cache and ~2 GB of build cache.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
pin=$(tr -d '[:space:]' <"$root/envoy-gateway/VERSION")
tools="$root/.tools"
module=github.com/envoyproxy/gateway
bin="$tools/bin/envoy-gateway"

version_of() { # prints the module version an envoy-gateway binary was built from, or nothing
	go version -m "$1" 2>/dev/null | awk -v m="$module" '$1 == "mod" && $2 == m { print $3; exit }'
}

if [ -n "${ENVOY_GATEWAY_BIN:-}" ]; then
	if [ ! -x "$ENVOY_GATEWAY_BIN" ]; then
		echo "envoy-gateway/install.sh: ENVOY_GATEWAY_BIN=$ENVOY_GATEWAY_BIN is not an executable file" >&2
		exit 1
	fi
	echo "$ENVOY_GATEWAY_BIN"
	exit 0
fi

if ! command -v go >/dev/null 2>&1; then
	echo "envoy-gateway/install.sh: go is needed to build $module/cmd/envoy-gateway@$pin; or set ENVOY_GATEWAY_BIN" >&2
	exit 1
fi

if [ -x "$bin" ] && [ "$(version_of "$bin")" = "$pin" ]; then
	echo "$bin"
	exit 0
fi

echo "envoy-gateway/install.sh: building $module/cmd/envoy-gateway@$pin into $tools/bin (cold caches: several minutes)" >&2
mkdir -p "$tools/bin"
# Build outside this repository so its go.mod/go.work play no part; drop
# -mod=... from GOFLAGS (meaningless for pkg@version), keep the rest.
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
goflags=$(printf '%s\n' ${GOFLAGS:-} | grep -v '^-mod=' | tr '\n' ' ' || true)
start=$(date +%s)
if ! (cd "$scratch" && GOWORK=off GOFLAGS="$goflags" GOBIN="$scratch" \
	go install -trimpath \
	-ldflags "-s -w -X $module/internal/cmd/version.envoyGatewayVersion=$pin" \
	"$module/cmd/envoy-gateway@$pin" >&2); then
	echo "envoy-gateway/install.sh: go install $module/cmd/envoy-gateway@$pin failed (is the Go module proxy reachable? GOPROXY=$(go env GOPROXY))" >&2
	exit 1
fi
mv -f "$scratch/envoy-gateway" "$bin"
got=$(version_of "$bin")
if [ "$got" != "$pin" ]; then
	echo "envoy-gateway/install.sh: built $bin reports module version '${got:-unknown}', want $pin" >&2
	exit 1
fi
echo "envoy-gateway/install.sh: built in $(($(date +%s) - start))s" >&2
echo "$bin"
