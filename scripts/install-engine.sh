#!/usr/bin/env bash
# Install and start a Docker engine that bakery can drive, on Debian 12/13 (root).
#
# Debian 12's own docker.io (20.10) has no buildx plugin, and python-on-whales' docker.build()
# needs buildx >= 0.13. Debian 13 ("trixie") packages install cleanly on Debian 12 and pull
# nothing else from trixie, so this script adds a trixie source built from the mirror already in
# the machine's apt sources (never a hard-coded host), pins it low so only packages asked for
# with -t trixie come from it, installs the pinned versions and starts dockerd if it is not up.
#
# Idempotent: re-running it changes nothing once everything is in place.
# Usage: sudo scripts/install-engine.sh        (BAKERY_SKIP_DOCKERD=1 to install only)
set -euo pipefail

DOCKER_IO_VERSION="${DOCKER_IO_VERSION:-26.1.5+dfsg1-9+deb13u1+b1}"
BUILDX_VERSION="${BUILDX_VERSION:-0.13.1+ds1-3}"
COMPOSE_VERSION="${COMPOSE_VERSION:-2.26.1-4}"

log() { printf 'install-engine: %s\n' "$*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
  log "must run as root (apt-get and dockerd need it): sudo $0"
  exit 2
fi

mirror_uri() {
  # The first Debian archive URI in the machine's apt sources (deb822 or one-line format).
  local uri=""
  if compgen -G "/etc/apt/sources.list.d/*.sources" >/dev/null; then
    uri=$(awk '/^URIs:/ {print $2}' /etc/apt/sources.list.d/*.sources | grep -v -- '-security' | head -n1 || true)
  fi
  if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
    uri=$(awk '$1=="deb" && $0 !~ /security/ {print $2; exit}' /etc/apt/sources.list || true)
  fi
  printf '%s' "$uri"
}

add_trixie_source() {
  local list=/etc/apt/sources.list.d/bakery-trixie.list
  local prefs=/etc/apt/preferences.d/bakery-trixie
  local codename
  codename=$(. /etc/os-release && printf '%s' "${VERSION_CODENAME:-}")
  if [ "$codename" = "trixie" ]; then
    return 0
  fi
  local uri
  uri=$(mirror_uri)
  if [ -z "$uri" ]; then
    log "no Debian mirror found in /etc/apt/sources.list{,.d} — add one, then re-run"
    exit 2
  fi
  if [ ! -f "$list" ] || ! grep -qF "$uri" "$list"; then
    log "adding trixie source from $uri (pinned low)"
    printf 'deb %s trixie main\n' "$uri" >"$list"
    printf 'Package: *\nPin: release n=trixie\nPin-Priority: 100\n' >"$prefs"
    APT_UPDATED=0
  fi
}

APT_UPDATED=0
apt_update_once() {
  if [ "$APT_UPDATED" -eq 0 ]; then
    apt-get update -qq
    APT_UPDATED=1
  fi
}

have_pkg_version() {  # name, glob of wanted version
  local v
  v=$(dpkg-query -W -f='${Status} ${Version}' "$1" 2>/dev/null || true)
  # shellcheck disable=SC2053
  [[ "$v" == "install ok installed "* ]] && [[ "${v#install ok installed }" == $2 ]]
}

install_packages() {
  local trixie_wanted=() base_wanted=()
  have_pkg_version docker.io "$DOCKER_IO_VERSION" || trixie_wanted+=("docker.io")
  have_pkg_version docker-buildx "$BUILDX_VERSION" || trixie_wanted+=("docker-buildx")
  have_pkg_version docker-compose "$COMPOSE_VERSION" || trixie_wanted+=("docker-compose")
  for p in docker-registry debootstrap zstd apache2-utils jq util-linux iproute2; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || base_wanted+=("$p")
  done
  if [ "${#trixie_wanted[@]}" -eq 0 ] && [ "${#base_wanted[@]}" -eq 0 ]; then
    log "packages already installed"
    return 0
  fi
  add_trixie_source
  apt_update_once
  export DEBIAN_FRONTEND=noninteractive
  if [ "${#trixie_wanted[@]}" -gt 0 ]; then
    local codename target=()
    codename=$(. /etc/os-release && printf '%s' "${VERSION_CODENAME:-}")
    [ "$codename" = "trixie" ] || target=(-t trixie)
    log "installing ${trixie_wanted[*]} from trixie"
    apt-get install -y -qq --no-install-recommends "${target[@]}" \
      "docker.io=$DOCKER_IO_VERSION" "docker-buildx=$BUILDX_VERSION" "docker-compose=$COMPOSE_VERSION" >/dev/null
  fi
  if [ "${#base_wanted[@]}" -gt 0 ]; then
    log "installing ${base_wanted[*]}"
    apt-get install -y -qq --no-install-recommends "${base_wanted[@]}" >/dev/null
  fi
  # docker-registry's package starts a service on :5000 where systemd/init exists; tests start
  # their own registries, so make sure none is left running from the package.
  pkill -f '^/usr/bin/docker-registry serve /etc/docker/registry/config.yml' 2>/dev/null || true
}

start_dockerd() {
  if docker info >/dev/null 2>&1; then
    log "dockerd already answers"
    return 0
  fi
  local logf=/var/log/bakery-dockerd.log
  log "starting dockerd (log: $logf)"
  nohup dockerd >"$logf" 2>&1 &
  local deadline=$((SECONDS + 60))
  until docker info >/dev/null 2>&1; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "dockerd did not answer within 60 s; last log lines:"
      tail -n 20 "$logf" >&2
      exit 1
    fi
    sleep 0.5
  done
  log "dockerd is up: $(docker version --format '{{.Server.Version}}')"
}

install_packages
if [ "${BAKERY_SKIP_DOCKERD:-0}" != "1" ]; then
  start_dockerd
fi
docker buildx version >&2
