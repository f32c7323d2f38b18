#!/usr/bin/env bash
# scripts/start-dockerd.sh [STATE_DIR]            find or start the Docker engine the tests use
# scripts/start-dockerd.sh --stop [--purge] [STATE_DIR]   stop the engine this script started there
#
# Prints two lines on success:
#   DOCKER_HOST=<the engine to use>
#   DOCKERD_STARTED=no|yes|earlier
#     no:      the machine's engine (1. or 2. below), not ours to stop;
#     yes:     this call started it, under STATE_DIR;
#     earlier: one this script started before under STATE_DIR and nobody stopped (a run that kept
#              it with KEEP_DOCKERD=1, or a test run outside npm test): still the project's own, so
#              npm test stops and purges it like one it started, unless KEEP_DOCKERD=1 again.
# Which engine, first that answers `docker version`:
#   1. DOCKER_HOST, when it is set (an engine you give the tests is used, never replaced);
#   2. the default socket /var/run/docker.sock;
#   3. an engine this script started before under STATE_DIR (default /tmp/test-dockerd);
#   4. a new engine under STATE_DIR: storage driver vfs (no overlay mounts needed), no iptables
#      rules, no default docker0 bridge. A plain `docker run` gets no network there (use
#      --network host); user-defined networks, such as docker-compose's, work between containers,
#      and their published ports reach 127.0.0.1 through docker-proxy. Builds that need the
#      network (npm ci) must use `docker build --network host`. Starting one needs root.
# Debian's docker.io and docker-compose are installed when missing (as root; otherwise the script
# says what to install and fails). --stop ends the engine of STATE_DIR by its pid file and keeps
# its data (pulled and built images) for the next start; --purge then also unmounts what the engine
# left mounted there (its network namespace, exec/netns/default) and removes STATE_DIR.
set -euo pipefail

stop=no purge=no
while [[ $# -gt 0 && $1 == --* ]]; do
  case $1 in
    --stop) stop=yes ;;
    --purge) purge=yes ;;
    *) echo "start-dockerd.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
state=$(realpath -m "${1:-/tmp/test-dockerd}")
sock="unix://$state/docker.sock"

if [[ $stop == yes ]]; then
  if [[ -s $state/pid ]] && kill -0 "$(cat "$state/pid")" 2>/dev/null; then
    pid=$(cat "$state/pid")
    kill "$pid"
    for _ in $(seq 1 120); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    if kill -0 "$pid" 2>/dev/null; then echo "dockerd ($pid) did not stop within 30 s" >&2; exit 1; fi
    echo "stopped dockerd ($pid) of $state"
  else
    echo "no dockerd running for $state"
  fi
  if [[ $purge == yes && -e $state ]]; then
    # Mounts below STATE_DIR, deepest first: rm cannot remove a mount point that is still mounted.
    awk -v prefix="$state/" 'index($5, prefix) == 1 { print $5 }' /proc/self/mountinfo | sort -r |
      while read -r mount; do umount "$mount" 2>/dev/null || umount -l "$mount"; done
    rm -rf "$state" && echo "removed $state"
  fi
  exit 0
fi

answers() { DOCKER_HOST=$1 timeout 20 docker version >/dev/null 2>&1; }
found() { echo "DOCKER_HOST=$1"; echo "DOCKERD_STARTED=$2"; exit 0; }

if ! command -v docker >/dev/null || ! command -v dockerd >/dev/null || ! command -v docker-compose >/dev/null; then
  if [[ $(id -u) -ne 0 ]]; then
    echo "The e2e and stack tests need Docker: install Debian's docker.io and docker-compose (as root: apt-get install docker.io docker-compose), or set DOCKER_HOST to a running engine together with a docker and docker-compose client." >&2
    exit 1
  fi
  echo "installing docker.io docker-compose" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io docker-compose >/dev/null
fi

if [[ -n ${DOCKER_HOST:-} ]]; then
  if answers "$DOCKER_HOST"; then found "$DOCKER_HOST" no; fi
  echo "DOCKER_HOST=$DOCKER_HOST does not answer; looking for another engine" >&2
fi
if [[ -S /var/run/docker.sock ]] && answers unix:///var/run/docker.sock; then found unix:///var/run/docker.sock no; fi
if answers "$sock"; then found "$sock" earlier; fi

if [[ $(id -u) -ne 0 ]]; then
  echo "No Docker engine answers (DOCKER_HOST, /var/run/docker.sock, $sock) and starting one needs root: start Docker, or set DOCKER_HOST to a running engine, or run as root." >&2
  exit 1
fi
mkdir -p "$state"
setsid dockerd --iptables=false --ip6tables=false --bridge=none --storage-driver=vfs \
  --data-root "$state/data" --exec-root "$state/exec" --pidfile "$state/pid" -H "$sock" \
  >"$state/log" 2>&1 </dev/null &
for _ in $(seq 1 120); do
  if answers "$sock"; then found "$sock" yes; fi
  sleep 0.25
done
echo "dockerd did not start; last lines of $state/log:" >&2
tail -20 "$state/log" >&2
exit 1
