# Shared set-up steps for install-and-run.sh and test.sh; source it.
#
# Every step checks first and changes nothing when its part is in place,
# so running it again is cheap.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${ZENPRO_VENV:-$ROOT/.venv}"

say() {
    echo "==> $*" >&2
}

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    else
        sudo "$@"
    fi
}

apt_install() {
    local missing=()
    local package
    for package in "$@"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" ||
            missing+=("$package")
    done
    [ "${#missing[@]}" -eq 0 ] && return
    say "Installing Debian packages: ${missing[*]}"
    if [ -z "${APT_UPDATED:-}" ]; then
        as_root apt-get update -qq
        APT_UPDATED=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

check_python() {
    if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        echo "error: zenpro-local needs Python 3.11 or newer as python3" >&2
        exit 2
    fi
    if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
        apt_install python3-venv
    fi
}

# *.localhost host names resolve to loopback through nss-myhostname.
ensure_localhost_names() {
    if getent hosts probe.zenml.localhost >/dev/null 2>&1; then
        return
    fi
    apt_install libnss-myhostname
    if ! grep -q myhostname /etc/nsswitch.conf; then
        as_root sed -i 's/^hosts:.*/& myhostname/' /etc/nsswitch.conf
    fi
}

# Installs the package into $VENV; $1 is the pip extra, if any.
ensure_venv() {
    local extra="${1:-}"
    if [ ! -x "$VENV/bin/python" ]; then
        say "Creating the virtual environment $VENV"
        python3 -m venv "$VENV"
    fi
    say "Installing zenpro-local${extra:+ with [$extra]} into $VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check -e "$ROOT${extra:+[$extra]}"
}

ensure_docker() {
    bash "$ROOT/scripts/ensure-docker.sh"
}

# Builds the tenant image offline unless it exists or can be pulled.
ensure_tenant_image() {
    local version image
    version="$("$VENV/bin/zenpro-local" settings --json "$@" |
        "$VENV/bin/python" -c 'import json,sys; print({s["name"]: s["value"] for s in json.load(sys.stdin)}["tenants.zenml_version"])')"
    image="$("$VENV/bin/zenpro-local" settings --json "$@" |
        "$VENV/bin/python" -c 'import json,sys; print({s["name"]: s["value"] for s in json.load(sys.stdin)}["tenants.image"])')"
    image="${image//\{version\}/$version}"
    if docker image inspect "$image" >/dev/null 2>&1; then
        return
    fi
    say "Pulling $image"
    if timeout 60 docker pull -q "$image" >/dev/null 2>&1; then
        return
    fi
    say "No registry answered: building $image offline (a few minutes)"
    "$VENV/bin/zenpro-local" image build --zenml-version "$version" --tag "$image" "$@"
}
