#!/usr/bin/env bash
# Set up a Debian 12/13 or Ubuntu 22.04/24.04 machine for bakery. Idempotent.
#
#   scripts/setup.sh          as root, or as a user with sudo (the script asks sudo itself)
#
# 1. a Docker engine with buildx (scripts/install-engine.sh keeps one that is already there);
# 2. python3 and python3-venv from apt when missing, then the project's environment `.venv`
#    (PEP 668: nothing goes into the system Python) with bakery and its test tools;
#    torch is never downloaded: an already installed host torch is used through
#    --system-site-packages, otherwise the training tests run inside the built cpu image;
# 3. a `bakery` command (/usr/local/bin/bakery -> .venv/bin/bakery);
# 4. the invoking sudo user may use Docker (docker group, plus an ACL on the socket so that it
#    works in this login already), and the local Debian base image `build.py base` makes
#    (debootstrap needs root; later builds reuse it). BAKERY_SETUP_BASE=0 skips the base.
#
# pip uses only the package sources the user configured (pip config, PIP_* variables).
set -euo pipefail

log() { printf 'setup: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 2; }

if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 \
    || die "needs root for apt-get and dockerd, and sudo is not installed — run it as root: su -c '$0'"
  log "not root: re-running through sudo"
  exec sudo --preserve-env=PIP_CERT,PIP_CONFIG_FILE,PIP_FIND_LINKS,PIP_INDEX_URL,PIP_EXTRA_INDEX_URL,HTTP_PROXY,HTTPS_PROXY,NO_PROXY,http_proxy,https_proxy,no_proxy,BAKERY_DOCKERD_TIMEOUT,BAKERY_SETUP_BASE,BAKERY_DEBIAN_MIRROR \
    bash "$0" "$@"
fi

PROJECT=$(cd "$(dirname "$0")/.." && pwd)
VENV="$PROJECT/.venv"
# The user the environment belongs to: the one who called sudo, else root.
OWNER="${SUDO_USER:-root}"
[ "$OWNER" = "root" ] || id -u "$OWNER" >/dev/null 2>&1 || OWNER=root
export DEBIAN_FRONTEND=noninteractive

as_owner() {
  if [ "$OWNER" = "root" ]; then "$@"; return; fi
  runuser -u "$OWNER" -- env HOME="$(getent passwd "$OWNER" | cut -d: -f6)" "$@"
}

apt_install() {
  log "apt-get install $*"
  local out
  out=$(mktemp)
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "$@" >"$out" 2>&1 \
    || { tail -n 20 "$out" >&2; rm -f "$out"; die "apt-get install $* failed (above)"; }
  rm -f "$out"
}

venv_works() {  # Debian/Ubuntu ship ensurepip separately (python3-venv, python3.X-venv)
  local probe rc=0
  probe=$(mktemp -d)
  python3 -m venv "$probe/v" >/dev/null 2>&1 || rc=1
  rm -rf "$probe"
  return "$rc"
}

ensure_python() {
  command -v python3 >/dev/null 2>&1 || apt_install python3
  venv_works && return 0
  local minor
  minor=$(python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
  apt_install python3-venv "python${minor}-venv"
  venv_works || die "python3 -m venv still fails after installing python3-venv"
}

host_has_torch() { python3 -c 'import torch' >/dev/null 2>&1; }

make_venv() {
  local flags=() extras="test,bench"
  if host_has_torch; then
    # The host's torch (already installed) is used as is: nothing is fetched for it.
    flags+=(--system-site-packages)
    extras="test,train,bench"
    log "host torch found: the training tests run on the host"
  else
    log "no host torch: the training tests run inside the built cpu image (nothing fetched)"
  fi
  if [ ! -x "$VENV/bin/python" ]; then
    log "creating $VENV"
    as_owner python3 -m venv "${flags[@]}" "$VENV"
  fi
  log "installing bakery and its test tools into $VENV"
  as_owner "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$PROJECT[$extras]"
}

link_command() {
  ln -sfn "$VENV/bin/bakery" /usr/local/bin/bakery
  log "bakery command: /usr/local/bin/bakery"
}

grant_docker() {
  [ "$OWNER" != "root" ] || return 0
  getent group docker >/dev/null || groupadd --system docker
  id -nG "$OWNER" | tr ' ' '\n' | grep -qx docker || usermod -aG docker "$OWNER"
  # Group membership counts from the next login; the ACL lets this login use Docker now.
  if [ -S /var/run/docker.sock ]; then
    command -v setfacl >/dev/null 2>&1 || apt_install acl
    setfacl -m "u:$OWNER:rw" /var/run/docker.sock
  fi
  log "$OWNER may use Docker (group docker from the next login; socket ACL for this one)"
}

make_base() {
  [ "${BAKERY_SETUP_BASE:-1}" != "0" ] || return 0
  local mirror=()
  [ -z "${BAKERY_DEBIAN_MIRROR:-}" ] || mirror=(--debian-mirror "$BAKERY_DEBIAN_MIRROR")
  (cd "$PROJECT" && "$VENV/bin/python" build.py base "${mirror[@]}")
}

cd "$PROJECT"
bash scripts/install-engine.sh
ensure_python
make_venv
link_command
grant_docker
make_base
log "done — python3 build.py --help (or: bakery --help)"
