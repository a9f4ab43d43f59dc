#!/usr/bin/env bash
# Runs the compose demo as `make compose-demo` does.
#   run.sh demo      up, drive the demo's traffic, print its verdicts, down;
#                    Ctrl-C (or any failure) takes everything down too
#   run.sh up        start the deployment in the background (policy copied
#                    to a fresh directory, printed on stdout)
#   run.sh traffic   drive the demo's traffic against it
#   run.sh down      stop it and remove its containers, networks and volumes
# Environment: SHADOWLAB_POLICY_DIR (default: a fresh copy of ./policy, so
# the demo's edit never touches the file in the repository),
# COMPOSE_PROJECT_NAME (default shadowlab).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
export COMPOSE_PROJECT_NAME=${COMPOSE_PROJECT_NAME:-shadowlab}
export SHADOWLAB_UID=${SHADOWLAB_UID:-$(id -u)} SHADOWLAB_GID=${SHADOWLAB_GID:-$(id -g)}
compose() { docker-compose -f "$here/docker-compose.yml" "$@"; }
say() { echo "examples/compose/run.sh: $*" >&2; }

# The ports the compose file binds on loopback: one taken means another
# deployment (or a local `serve`) runs; say which, rather than fail later.
ports=(18000 18002 18003 18080 18101 18102 10000 9901 19090)
check_ports() {
	local busy=()
	for p in "${ports[@]}"; do
		if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then busy+=("$p"); fi
	done
	if [ ${#busy[@]} -gt 0 ]; then
		say "127.0.0.1 ports ${busy[*]} are in use; stop what listens there (another compose demo: run.sh down)"
		exit 1
	fi
}

up() {
	if [ -z "${SHADOWLAB_POLICY_DIR:-}" ]; then
		SHADOWLAB_POLICY_DIR=$(mktemp -d "${TMPDIR:-/tmp}/shadowlab-compose-XXXXXX")
		cp "$here/policy/policy.yaml" "$SHADOWLAB_POLICY_DIR/"
	fi
	# serve runs as an unprivileged user: it must read the directory.
	chmod 755 "$SHADOWLAB_POLICY_DIR"
	export SHADOWLAB_POLICY_DIR
	check_ports
	compose up -d --no-build >&2
	echo "$SHADOWLAB_POLICY_DIR"
}

traffic() {
	[ -n "${SHADOWLAB_POLICY_DIR:-}" ] || { say "traffic needs SHADOWLAB_POLICY_DIR (what run.sh up printed)"; exit 2; }
	compose --profile traffic run --rm --no-deps traffic
}

down() {
	local log; log=$(mktemp)
	if ! SHADOWLAB_POLICY_DIR=${SHADOWLAB_POLICY_DIR:-$here/policy} compose --profile traffic --profile grafana down -v --remove-orphans --timeout 20 >"$log" 2>&1; then
		cat "$log" >&2; rm -f "$log"; return 1
	fi
	say "down: $(grep -c '^Removing .*done' "$log" || true) containers and their volumes removed"
	rm -f "$log"
}

made=
demo() {
	check_ports
	if [ -z "${SHADOWLAB_POLICY_DIR:-}" ]; then made=1; fi
	trap 'trap - INT TERM EXIT; echo >&2; say "taking the deployment down"; down || true; [ -n "$made" ] && rm -rf "${SHADOWLAB_POLICY_DIR:-/nonexistent}"; exit 130' INT TERM
	trap 'down || true; [ -n "$made" ] && rm -rf "${SHADOWLAB_POLICY_DIR:-/nonexistent}"' EXIT
	local start=$SECONDS
	SHADOWLAB_POLICY_DIR=$(up)
	export SHADOWLAB_POLICY_DIR
	say "up in $((SECONDS - start)) s; driving the demo's traffic"
	traffic
}

case "${1:-}" in
demo | up | traffic | down) "$1" ;;
*) echo "usage: $0 demo|up|traffic|down" >&2; exit 2 ;;
esac
