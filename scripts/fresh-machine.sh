#!/usr/bin/env bash
# Prove the README on a machine that has never seen bakery (issue 14).
#
#   scripts/fresh-machine.sh [root|sudo-user]     (default: root; needs a running Docker engine)
#
# A clean Debian 12 system: the debootstrap'd bakery/debian:bookworm image (no python3, no pip,
# no Docker, none of bakery's dependencies), run as a privileged container with its own dockerd
# and a /var/lib/docker volume. A clean clone of this repository's HEAD is copied in; the README's
# first command runs exactly as written (read from README.md), as root or as a user with
# passwordless sudo, then the test command on a reduced variant set. The host's pip settings
# (PIP_CERT's CA bundle, PIP_FIND_LINKS) are handed in as a user's machine would have them.
#
# FRESH_BASE_IMAGE     the Debian 12 image (default bakery/debian:bookworm; `build.py base` makes it)
# FRESH_VARIANTS       BAKERY_CHECK_VARIANTS for the test command (default 2.13.0-cpu-py3.11)
# FRESH_TEST_ARGS      pytest arguments of the test command (default: unit tests, image suites,
#                      and the training tests inside the cpu image)
# FRESH_NAME_PREFIX    prefix of the container and volume names (default bakery-fresh)
# FRESH_KEEP=1         keep the container and its volume for inspection
# FRESH_WORKFLOW=1     sudo-user mode: then replay the workflow there (scripts/workflow-proof.sh)
set -euo pipefail

MODE="${1:-root}"
case "$MODE" in root | sudo-user) ;; *) echo "usage: $0 [root|sudo-user]" >&2; exit 2 ;; esac
REPO=$(cd "$(dirname "$0")/.." && pwd)
BASE_IMAGE="${FRESH_BASE_IMAGE:-bakery/debian:bookworm}"
VARIANTS="${FRESH_VARIANTS:-2.13.0-cpu-py3.11}"
TEST_ARGS="${FRESH_TEST_ARGS:-tests/unit tests/image tests/docker/test_stylelora_in_image.py}"
NAME="${FRESH_NAME_PREFIX:-bakery-fresh}-$MODE-$$"
WORK=$(mktemp -d)
CA="${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}"

log() { printf '[fresh-machine %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

cleanup() {
  if [ "${FRESH_KEEP:-0}" = 1 ]; then
    log "kept container $NAME and volume $NAME-docker"
  else
    docker rm --force --volumes "$NAME" >/dev/null 2>&1 || true
    docker volume rm "$NAME-docker" >/dev/null 2>&1 || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

first_command() {  # the first line of the first sh block under "## Two commands", without its comment
  awk '/^## Two commands/ { section = 1 } section && /^```sh/ { getline; print; exit }' "$1" |
    sed 's/[[:space:]]*#.*$//'
}

docker image inspect "$BASE_IMAGE" >/dev/null || { log "$BASE_IMAGE is missing: python3 build.py base"; exit 2; }
log "clean clone of $(git -C "$REPO" rev-parse --short HEAD) (committed files only)"
git clone --quiet --no-local --branch "$(git -C "$REPO" rev-parse --abbrev-ref HEAD)" "$REPO" "$WORK/bakery"
FIRST=$(first_command "$WORK/bakery/README.md")
[ -n "$FIRST" ] || { log "no first command found in README.md"; exit 2; }

# The proxy's CA as pip settings name it (PIP_CERT), beside the system bundle, which
# ca-certificates' own postinst must stay free to rewrite.
mounts=(-v "$NAME-docker:/var/lib/docker" -v "$CA:/opt/host-ca.pem:ro")
envs=(-e PIP_CERT=/opt/host-ca.pem -e PIP_DISABLE_PIP_VERSION_CHECK=1 -e CI=true)
if [ -d "${PIP_FIND_LINKS:-/opt/wheels}" ]; then
  mounts+=(-v "${PIP_FIND_LINKS:-/opt/wheels}:/opt/wheels:ro")
  envs+=(-e PIP_FIND_LINKS=/opt/wheels -e PIP_CONFIG_FILE=/dev/null)
fi
log "starting $NAME from $BASE_IMAGE (privileged, own dockerd, /var/lib/docker volume)"
docker run -d --privileged --name "$NAME" --hostname fresh "${mounts[@]}" "$BASE_IMAGE" sleep infinity >/dev/null

HOME_DIR=/root USER_OPT=()
if [ "$MODE" = sudo-user ]; then
  # A usual machine with an admin user: sudo and the user exist, nothing of bakery's.
  docker exec "$NAME" bash -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends sudo >/dev/null
    useradd --create-home --shell /bin/bash alice
    echo "alice ALL=(ALL) NOPASSWD:ALL" > /etc/sudoers.d/alice'
  HOME_DIR=/home/alice USER_OPT=(-u alice)
fi
docker cp "$WORK/bakery" "$NAME:$HOME_DIR/bakery"
docker exec "$NAME" chown -R "${USER_OPT[1]:-root}:" "$HOME_DIR/bakery"

run_in() {  # a login shell in the clone, as the mode's user
  docker exec "${USER_OPT[@]}" "${envs[@]}" -w "$HOME_DIR/bakery" "$NAME" bash -lc "$1"
}

log "python3 before: $(run_in 'command -v python3 || echo none'); docker before: $(run_in 'command -v dockerd || echo none')"
log "first command, as written in README.md: $FIRST"
started=$SECONDS
run_in "$FIRST"
log "first command: $((SECONDS - started)) s"
log "images built: $(run_in "docker images --format '{{.Repository}}:{{.Tag}} {{.Size}}' | tr '\n' ' '")"
log "bakery command: $(run_in 'bakery --version')"

log "test command: BAKERY_CHECK_VARIANTS=$VARIANTS scripts/check.sh $TEST_ARGS"
started=$SECONDS
run_in "BAKERY_CHECK_VARIANTS=$VARIANTS scripts/check.sh $TEST_ARGS"
log "test command: $((SECONDS - started)) s"
log "PASSED as $MODE"
if [ "${FRESH_WORKFLOW:-0}" = 1 ] && [ "$MODE" = sudo-user ]; then
  "$REPO/scripts/workflow-proof.sh" "$NAME"
fi
