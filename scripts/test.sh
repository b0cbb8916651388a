#!/usr/bin/env bash
# Set up everything the test suite needs, then run it.
#
# Usage: scripts/test.sh [pytest arguments]
#
# Installs the package with its test extras, the Docker engine, the offline
# tenant image and *.localhost name resolution, then runs pytest. pytest's
# "no tests ran" (exit 5) counts as a failure.
set -euo pipefail
source "$(dirname "$0")/setup.sh"

check_python
ensure_localhost_names
# systemd-analyze checks the shipped units.
apt_install systemd
# tests/dashboard drives Debian's Chromium through chromedriver and trusts
# the daemon's CA with certutil.
apt_install chromium chromium-driver libnss3-tools
ensure_venv test
ensure_docker
ensure_tenant_image

cd "$ROOT"
status=0
"$VENV/bin/python" -m pytest "$@" || status=$?
if [ "$status" -eq 5 ]; then
    echo "error: no tests ran" >&2
    exit 1
fi
exit "$status"
