#!/usr/bin/env bash
# Make a Docker engine answer on this machine, installing it when missing.
#
# Installs Debian's docker.io (the engine) and debootstrap (used by the
# offline image builder) when either is absent, starts dockerd in the
# background when no engine answers, and waits until `docker info` works.
# Idempotent, and silent when everything is already there. Needs root for
# the install and for starting dockerd.
set -euo pipefail

DOCKERD_LOG="${DOCKERD_LOG:-/var/log/dockerd.log}"
WAIT_SECONDS="${DOCKER_WAIT_SECONDS:-60}"

log() {
    echo "ensure-docker: $*" >&2
}

engine_answers() {
    docker info >/dev/null 2>&1
}

install_missing_packages() {
    local missing=()
    command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
    command -v docker >/dev/null 2>&1 || missing+=(docker.io)
    command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
    if [ "${#missing[@]}" -eq 0 ]; then
        return
    fi

    if [ "$(id -u)" -ne 0 ]; then
        log "missing ${missing[*]}; run this script as root to install them"
        exit 1
    fi
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

start_dockerd() {
    if [ "$(id -u)" -ne 0 ]; then
        log "no Docker engine answers; run this script as root to start dockerd"
        exit 1
    fi
    log "starting dockerd (log: $DOCKERD_LOG)"
    # setsid detaches dockerd from this shell so it outlives the script.
    setsid dockerd >>"$DOCKERD_LOG" 2>&1 </dev/null &
}

wait_for_engine() {
    local deadline=$((SECONDS + WAIT_SECONDS))
    until engine_answers; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            log "dockerd did not answer within ${WAIT_SECONDS}s; see $DOCKERD_LOG"
            exit 1
        fi
        sleep 0.5
    done
}

install_missing_packages
if ! engine_answers; then
    # A dockerd may be starting already (another caller); start one only
    # when none runs.
    if ! pgrep -x dockerd >/dev/null 2>&1; then
        start_dockerd
    fi
    wait_for_engine
fi
