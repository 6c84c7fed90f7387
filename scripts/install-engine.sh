#!/usr/bin/env bash
# Install and start a Docker engine that bakery can drive (buildx >= 0.13), plus the tools the
# tests use (docker-registry, debootstrap, zstd, ...). Idempotent.
#
#   scripts/install-engine.sh          as root (scripts/setup.sh calls it)
#   scripts/install-engine.sh --plan   print the decisions and change nothing (no root needed)
#
# Decisions, in order (`--plan` prints them; tests/unit/test_install_engine.py checks them
# against real /etc/os-release and apt sources files of each supported system):
#   1. an engine with buildx is installed (docker-ce or the distro's docker.io): keep it;
#   2. docker-ce without buildx: refuse (its plugin comes from Docker's repository, not ours);
#   3. Debian 12/13: Debian 13's docker.io, docker-buildx and docker-compose, pinned. Where the
#      apt sources have no trixie suite (Debian 12), a trixie source is added from the Debian
#      mirror already in them (never a hard-coded host) and pinned low, so only the packages
#      asked for with -t trixie come from it (they pull nothing else from trixie);
#   4. Ubuntu 22.04/24.04: Ubuntu's own docker.io, docker-buildx and docker-compose-v2;
#   5. anything else: refused, with the manual steps.
#
# BAKERY_HOST_ROOT     read the host's files below this folder instead of / (tests)
# BAKERY_DOCKERD_TIMEOUT  seconds to wait for a started dockerd to answer (default 300)
# BAKERY_DOCKERD_LOG      dockerd's log when this script starts it (default /var/log/bakery-dockerd.log)
# BAKERY_SKIP_DOCKERD=1   install only, do not start dockerd
#   scripts/install-engine.sh --start-dockerd   only start dockerd (if needed) and wait for it
set -euo pipefail

DOCKER_IO_VERSION="${DOCKER_IO_VERSION:-26.1.5+dfsg1-9+deb13u1+b1}"
BUILDX_VERSION="${BUILDX_VERSION:-0.13.1+ds1-3}"
COMPOSE_VERSION="${COMPOSE_VERSION:-2.26.1-4}"
HOST_ROOT="${BAKERY_HOST_ROOT:-}"
# git: a copy of the repository without it (an archive, a copied clone) builds images without
# revision labels or the <variant>-<short sha> tag, and the release tests need it
TOOLS=(docker-registry debootstrap zstd apache2-utils jq util-linux iproute2 acl skopeo git)
EXIT_REFUSED=3

log() { printf 'install-engine: %s\n' "$*" >&2; }

# ---------------------------------------------------------------------------------------------
# Facts about the host (all read below $HOST_ROOT)

os_field() {  # KEY -> value from os-release, quotes removed
  local file="$HOST_ROOT/etc/os-release"
  [ -f "$file" ] || file="$HOST_ROOT/usr/lib/os-release"
  [ -f "$file" ] || return 0
  sed -n "s/^$1=//p" "$file" | head -n1 | tr -d '"'"'"
}

apt_sources() {  # "URI SUITE" per enabled deb source, deb822 and one-line files
  local apt="$HOST_ROOT/etc/apt" file
  for file in "$apt"/sources.list.d/*.sources; do
    [ -f "$file" ] || continue
    awk 'BEGIN { RS=""; FS="\n" }
      { types=""; uris=""; suites=""; enabled="yes"
        for (i = 1; i <= NF; i++) {
          if ($i ~ /^#/) continue
          split($i, kv, ":[ \t]*"); key=tolower(kv[1]); value=substr($i, length(kv[1]) + 2)
          gsub(/^[ \t]+|[ \t]+$/, "", value)
          if (key == "types") types=value; else if (key == "uris") uris=value
          else if (key == "suites") suites=value; else if (key == "enabled") enabled=tolower(value)
        }
        if (types !~ /(^| )deb( |$)/ || enabled == "no") next
        nu = split(uris, u, " "); ns = split(suites, s, " ")
        for (a = 1; a <= nu; a++) for (b = 1; b <= ns; b++) print u[a], s[b] }' "$file"
  done
  for file in "$apt/sources.list" "$apt"/sources.list.d/*.list; do
    [ -f "$file" ] || continue
    awk '$1 == "deb" { i = 2; if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
                       print $i, $(i + 1) }' "$file"
  done
}

debian_mirror() {  # the first Debian archive URI in the apt sources (not security, not ports)
  apt_sources | awk '$1 !~ /security/ && $2 !~ /-security$/ &&
    ($1 ~ /\/debian\/?$/ || $2 ~ /^(bookworm|trixie|forky|sid|stable|testing|unstable)(-|$)/) {
      sub(/\/$/, "", $1); print $1; exit }'
}

apt_has_suite() { apt_sources | awk -v want="$1" '$2 == want { found = 1 } END { exit !found }'; }

dpkg_installed() {  # package name -> 0 when dpkg's status says it is installed
  local status="$HOST_ROOT/var/lib/dpkg/status"
  [ -f "$status" ] || return 1
  awk -v pkg="$1" 'BEGIN { RS="" } $0 ~ "(^|\n)Package: " pkg "\n" &&
    $0 ~ "\nStatus: install ok installed" { found = 1 } END { exit !found }' "$status"
}

has_dockerd() { [ -x "$HOST_ROOT/usr/bin/dockerd" ] || [ -x "$HOST_ROOT/usr/sbin/dockerd" ]; }

has_buildx() {
  local dir
  for dir in usr/libexec/docker/cli-plugins usr/lib/docker/cli-plugins usr/local/lib/docker/cli-plugins; do
    [ -x "$HOST_ROOT/$dir/docker-buildx" ] && return 0
  done
  return 1
}

# ---------------------------------------------------------------------------------------------
# Decisions

ENGINE="" ENGINE_WHY="" APT_SOURCE="" PACKAGES=() TARGET_RELEASE=()
EXTRA_TOOLS=()

refuse() {  # why, then the manual steps
  log "refused: $1"
  log "install a Docker engine with buildx >= 0.13 yourself, then re-run this script (it keeps it):"
  shift
  local step
  for step in "$@"; do log "  $step"; done
  exit "$EXIT_REFUSED"
}

MANUAL_DOCKER_CE=(
  "1. follow https://docs.docker.com/engine/install/ for your system (docker-ce, docker-ce-cli, containerd.io, docker-buildx-plugin, docker-compose-plugin)"
  "2. apt-get install docker-registry debootstrap zstd apache2-utils jq skopeo git (or your system's equivalents)"
  "3. start dockerd and check: docker buildx version"
)

decide_debian() {
  local version="$1" mirror
  case "$version" in 12 | 13) ;; *) refuse "Debian ${version:-?} is not supported (Debian 12 and 13 are)" "${MANUAL_DOCKER_CE[@]}" ;; esac
  # trixie splits the client out of docker.io (docker-cli, only recommended by docker.io)
  PACKAGES=("docker.io=$DOCKER_IO_VERSION" "docker-cli=$DOCKER_IO_VERSION" "docker-buildx=$BUILDX_VERSION" "docker-compose=$COMPOSE_VERSION")
  if apt_has_suite trixie; then
    ENGINE=debian ENGINE_WHY="Debian $version, apt sources have trixie"
    [ "$version" = 13 ] || TARGET_RELEASE=(-t trixie)
    return 0
  fi
  mirror=$(debian_mirror)
  [ -n "$mirror" ] || refuse "no Debian mirror in $HOST_ROOT/etc/apt/sources.list{,.d}" \
    "add your Debian mirror to the apt sources (e.g. deb http://deb.debian.org/debian bookworm main), then re-run"
  ENGINE=debian-trixie ENGINE_WHY="Debian $version: Debian 13's engine from $mirror, pinned low"
  APT_SOURCE="deb $mirror trixie main"
  TARGET_RELEASE=(-t trixie)
}

decide() {
  local id version
  id=$(os_field ID) version=$(os_field VERSION_ID)
  if has_dockerd && has_buildx; then
    ENGINE=keep ENGINE_WHY="an engine with buildx is installed"
    dpkg_installed docker-ce && ENGINE_WHY="docker-ce with buildx is installed"
  elif dpkg_installed docker-ce; then
    refuse "docker-ce is installed without buildx; this script never replaces docker-ce" \
      "1. apt-get install docker-buildx-plugin (from Docker's repository, which docker-ce came from)" \
      "2. check: docker buildx version"
  elif [ "$id" = debian ]; then
    decide_debian "$version"
  elif [ "$id" = ubuntu ] && { [ "$version" = 22.04 ] || [ "$version" = 24.04 ]; }; then
    ENGINE=ubuntu ENGINE_WHY="Ubuntu $version: its own docker.io, docker-buildx, docker-compose-v2"
    PACKAGES=(docker.io docker-buildx docker-compose-v2)
  else
    refuse "${id:-unknown system} ${version} is not supported (Debian 12/13, Ubuntu 22.04/24.04 are)" "${MANUAL_DOCKER_CE[@]}"
  fi
  # debootstrap of a Debian base on a non-Debian host needs Debian's keyring.
  [ "$id" = debian ] || EXTRA_TOOLS=(debian-archive-keyring)
}

print_plan() {
  printf 'os=%s %s\n' "$(os_field ID)" "$(os_field VERSION_ID)"
  printf 'engine=%s\n' "$ENGINE"
  printf 'why=%s\n' "$ENGINE_WHY"
  printf 'apt_source=%s\n' "$APT_SOURCE"
  printf 'packages=%s\n' "${PACKAGES[*]}"
  printf 'target_release=%s\n' "${TARGET_RELEASE[*]}"
  printf 'tools=%s\n' "${TOOLS[*]} ${EXTRA_TOOLS[*]}"
}

# ---------------------------------------------------------------------------------------------
# Actions (root)

add_trixie_source() {
  local list=/etc/apt/sources.list.d/bakery-trixie.list prefs=/etc/apt/preferences.d/bakery-trixie
  [ -n "$APT_SOURCE" ] || return 0
  if [ ! -f "$list" ] || ! grep -qxF "$APT_SOURCE" "$list"; then
    log "adding '$APT_SOURCE' (pinned low)"
    printf '%s\n' "$APT_SOURCE" >"$list"
    printf 'Package: *\nPin: release n=trixie\nPin-Priority: 100\n' >"$prefs"
  fi
}

missing_tools() {
  local p
  for p in "${TOOLS[@]}" "${EXTRA_TOOLS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || printf '%s\n' "$p"
  done
}

install_packages() {
  local tools=()
  mapfile -t tools < <(missing_tools)
  [ "$ENGINE" != keep ] || PACKAGES=()
  if [ "${#PACKAGES[@]}" -eq 0 ] && [ "${#tools[@]}" -eq 0 ]; then
    log "packages already installed"
    return 0
  fi
  add_trixie_source
  apt-get update -qq
  export DEBIAN_FRONTEND=noninteractive
  if [ "${#PACKAGES[@]}" -gt 0 ]; then
    log "installing ${PACKAGES[*]} ($ENGINE_WHY)"
    apt-get install -y -qq --no-install-recommends "${TARGET_RELEASE[@]}" "${PACKAGES[@]}" >/dev/null
  fi
  if [ "${#tools[@]}" -gt 0 ]; then
    log "installing ${tools[*]}"
    apt-get install -y -qq --no-install-recommends "${tools[@]}" >/dev/null
  fi
  # docker-registry's package starts a service on :5000 where an init system exists; tests start
  # their own registries, so make sure none is left running from the package.
  pkill -f '^/usr/bin/docker-registry serve /etc/docker/registry/config.yml' 2>/dev/null || true
}

start_dockerd() {
  if ! command -v docker >/dev/null 2>&1; then
    log "the docker command is missing (Debian 13: apt-get install docker-cli); install it, then re-run"
    exit 1
  fi
  if docker info >/dev/null 2>&1; then
    log "dockerd already answers"
    return 0
  fi
  local logf="${BAKERY_DOCKERD_LOG:-/var/log/bakery-dockerd.log}" timeout="${BAKERY_DOCKERD_TIMEOUT:-300}" pid
  case "$timeout" in '' | *[!0-9]*) log "BAKERY_DOCKERD_TIMEOUT='$timeout' is not a whole number of seconds (e.g. 300)"; exit 2 ;; esac
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    log "starting docker.service"
    systemctl start docker.service || true
  else
    log "starting dockerd (log: $logf)"
    nohup dockerd >"$logf" 2>&1 &
    pid=$!
  fi
  local deadline=$((SECONDS + timeout))
  until docker info >/dev/null 2>&1; do
    if [ -n "${pid:-}" ] && ! kill -0 "$pid" 2>/dev/null; then
      log "dockerd exited before answering; last lines of $logf:"
      tail -n 30 "$logf" >&2
      exit 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "dockerd did not answer within $timeout s (BAKERY_DOCKERD_TIMEOUT); last lines of $logf:"
      tail -n 30 "$logf" >&2 || true
      exit 1
    fi
    sleep 1
  done
  log "dockerd is up: $(docker version --format '{{.Server.Version}}')"
}

main() {
  if [ "${1:-}" = "--start-dockerd" ]; then  # only start the daemon and wait for it
    start_dockerd
    return 0
  fi
  decide
  if [ "${1:-}" = "--plan" ]; then
    print_plan
    return 0
  fi
  if [ "$(id -u)" -ne 0 ]; then
    log "must run as root (apt-get and dockerd need it): sudo $0"
    exit 2
  fi
  log "engine: $ENGINE — $ENGINE_WHY"
  install_packages
  if [ "${BAKERY_SKIP_DOCKERD:-0}" != "1" ]; then
    start_dockerd
  fi
  docker buildx version >&2
}

main "$@"
