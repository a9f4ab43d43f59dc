#!/usr/bin/env bash
# Builds the compose demo's images offline, from what this machine has: no
# registry is reached. Static Go binaries into images from scratch, Envoy
# from the binary `make envoy` installed with exactly the libraries ldd
# names, Prometheus from Debian's package the same way. Prints each image
# with its size. `make images` runs it; docker.sh ensure must have run.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
GO=${GO:-go}
stage="$root/.tools/images"
rm -rf "$stage" && mkdir -p "$stage"

say() { echo "examples/compose/images.sh: $*" >&2; }

# copy_with_libs BIN DEST: BIN at DEST/usr/local/bin, and every shared
# library it loads (and the loader) at the same path under DEST.
copy_with_libs() {
	local bin=$1 dest=$2
	mkdir -p "$dest/usr/local/bin"
	cp -L "$bin" "$dest/usr/local/bin/"
	ldd "$bin" | grep -oE '/[^ ]+' | while read -r lib; do
		mkdir -p "$dest$(dirname "$lib")"
		cp -L "$lib" "$dest$lib"
	done
}

# 1. shadowlab, the example service and the plugin.
ctx="$stage/shadowlab"
mkdir -p "$ctx/usr/local/bin" "$ctx/usr/local/lib/shadowlab" "$ctx/data" "$ctx/bootstrap" "$ctx/tmp"
(cd "$root" &&
	CGO_ENABLED=0 $GO build -trimpath -ldflags='-s -w' -o "$ctx/usr/local/bin/shadowlab" ./cmd/shadowlab &&
	CGO_ENABLED=0 $GO build -trimpath -ldflags='-s -w' -o "$ctx/usr/local/bin/backend" ./examples/cmd/backend &&
	GOOS=wasip1 GOARCH=wasm $GO build -buildmode=c-shared -trimpath -ldflags='-s -w' -o "$ctx/usr/local/lib/shadowlab/shadowlab.wasm" ./wasm)

# 2. Envoy.
envoy=$("$root/envoy/install.sh")
version=$("$envoy" --version | sed -nE 's#.*version: [0-9a-f]+/([0-9]+\.[0-9]+\.[0-9]+)/.*#\1#p' | head -n1)
ctx="$stage/envoy"
copy_with_libs "$envoy" "$ctx"
mkdir -p "$ctx/tmp" "$ctx/bootstrap"

# 3. Prometheus, from Debian's package.
prom=$(command -v prometheus) || { say "prometheus not found: run examples/compose/docker.sh ensure (apt-get install prometheus)"; exit 1; }
promversion=$(prometheus --version 2>&1 | sed -nE 's/^prometheus, version ([0-9.]+).*/\1/p')
ctx="$stage/prometheus"
copy_with_libs "$prom" "$ctx/root"
copy_with_libs "$(command -v promtool)" "$ctx/root"
mkdir -p "$ctx/data" "$ctx/root/usr/share/prometheus"
if [ -d /usr/share/prometheus/web ]; then cp -r /usr/share/prometheus/web "$ctx/root/usr/share/prometheus/"; fi

build() { # build TAG CONTEXT DOCKERFILE
	say "building $1"
	# The legacy builder: BuildKit needs the buildx plugin, which Debian's
	# docker.io does not ship; nothing here needs BuildKit.
	local log; log=$(mktemp)
	if ! DOCKER_BUILDKIT=0 docker build -q -t "$1" -f "$3" "$2" >"$log" 2>&1; then
		cat "$log" >&2; rm -f "$log"; exit 1
	fi
	rm -f "$log"
}
build shadowlab/shadowlab:dev "$stage/shadowlab" "$here/images/shadowlab.Dockerfile"
build "shadowlab/envoy:$version" "$stage/envoy" "$here/images/envoy.Dockerfile"
build "shadowlab/prometheus:$promversion" "$stage/prometheus" "$here/images/prometheus.Dockerfile"
docker image ls --format '{{.Repository}}:{{.Tag}}  {{.Size}}' | grep '^shadowlab/' | sort
