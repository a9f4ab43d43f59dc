#!/usr/bin/env bash
# Makes a Docker engine and docker-compose available, from Debian's packages
# when they are missing (with Prometheus and redis-server, which `make test`
# also needs); the compose demo, its test and `make test` call it.
#   docker.sh ensure   install what is missing (as root, with apt-get) and
#                      start dockerd if no daemon answers; prints nothing on
#                      stdout when all is there already
#   docker.sh stop     stop the dockerd that `ensure` started, if any (never
#                      one it did not start)
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
state="$root/.tools/docker"
pidfile="$state/dockerd.pid"

say() { echo "examples/compose/docker.sh: $*" >&2; }

need_root() {
	if [ "$(id -u)" != 0 ]; then
		say "$1 needs root (or install docker.io, docker-compose, prometheus and redis-server yourself and start dockerd)"
		exit 1
	fi
}

install_missing() {
	local pkgs=()
	command -v dockerd >/dev/null || pkgs+=(docker.io)
	command -v docker-compose >/dev/null || pkgs+=(docker-compose)
	# Debian's Prometheus: the offline Prometheus image and promtool.
	command -v prometheus >/dev/null && command -v promtool >/dev/null || pkgs+=(prometheus)
	# Debian's Redis: the shared admission budget's tests start their own
	# redis-server (the package's service is not started: policy-rc.d).
	command -v redis-server >/dev/null || pkgs+=(redis-server)
	[ ${#pkgs[@]} -eq 0 ] && return 0
	need_root "installing ${pkgs[*]}"
	say "installing ${pkgs[*]} from Debian's packages"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >&2
	# The prometheus package would start a service; policy-rc.d says no.
	local rc=/usr/sbin/policy-rc.d created=
	if [ ! -e "$rc" ]; then printf '#!/bin/sh\nexit 101\n' >"$rc" && chmod +x "$rc" && created=1; fi
	apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >&2 || { [ -n "$created" ] && rm -f "$rc"; exit 1; }
	[ -n "$created" ] && rm -f "$rc"
	return 0
}

daemon_up() { docker info >/dev/null 2>&1; }

start_daemon() {
	daemon_up && return 0
	need_root "starting dockerd"
	mkdir -p "$state"
	say "starting dockerd (log: $state/dockerd.log)"
	dockerd --pidfile "$state/dockerd.run.pid" >"$state/dockerd.log" 2>&1 &
	echo $! >"$pidfile"
	for _ in $(seq 1 120); do
		daemon_up && return 0
		if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
			say "dockerd exited; its log:"; tail -n 30 "$state/dockerd.log" >&2; rm -f "$pidfile"; exit 1
		fi
		sleep 0.5
	done
	say "dockerd did not answer within 60 s; its log:"; tail -n 30 "$state/dockerd.log" >&2
	exit 1
}

stop_daemon() {
	[ -f "$pidfile" ] || return 0
	local pid; pid=$(cat "$pidfile")
	rm -f "$pidfile"
	kill -0 "$pid" 2>/dev/null || return 0
	say "stopping the dockerd it started (pid $pid)"
	kill -TERM "$pid"
	for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.5; done
	kill -KILL "$pid" 2>/dev/null || true
}

case "${1:-}" in
ensure) install_missing; start_daemon ;;
stop) stop_daemon ;;
*) echo "usage: $0 ensure|stop" >&2; exit 2 ;;
esac
