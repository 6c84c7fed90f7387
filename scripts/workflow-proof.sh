#!/usr/bin/env bash
# Replay .github/workflows/images.yml in a fresh-machine container (issue 14).
#
#   scripts/workflow-proof.sh CONTAINER     (a container kept by FRESH_KEEP=1 scripts/fresh-machine.sh sudo-user)
#
# scripts/workflow-steps.py refuses root and needs passwordless sudo, as GitHub's runner user
# has; this host runs as root without sudo, so the replay runs as the fresh machine's sudo user
# (alice), in a clean clone of this repository's HEAD, against a docker-registry on the
# container's loopback (127.0.0.1:5000) that replaces the workflow's REGISTRY.
#
# What differs from a hosted runner, and why (printed too):
# - the replay host is a self-hosted cpu runner (BAKERY_GPU_RUNNERS=cpu): a hosted runner's
#   `docker buildx create --driver docker-container` needs the moby/buildkit image, which no
#   registry here serves; self-hosted runners use the daemon's own builder;
# - BAKERY_VARIANTS=<the variant>: the replay builds one variant, so plan and promote use just it
#   (promote refuses a selection whose push reports are missing);
# - BAKERY_BOOTSTRAP_BASE=true: Docker Hub is unreachable, so the build uses the debootstrap'd base;
# - the checks job is not replayed: it runs the whole unit and Docker test suites (CI's job);
#   its two commands (setup.sh, check.sh) are what fresh-machine.sh proves;
# - the registry is anonymous: no BAKERY_REGISTRY_USER/PASSWORD, so no login (logout still runs).
#
# FRESH_VARIANTS   the variant to build, test and publish (default 2.13.0-cpu-py3.11)
set -euo pipefail

CONTAINER="${1:?usage: $0 CONTAINER}"
REPO=$(cd "$(dirname "$0")/.." && pwd)
VARIANT="${FRESH_VARIANTS:-2.13.0-cpu-py3.11}"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
CLONE=/home/alice/workflow-clone

log() { printf '[workflow-proof %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

log "clean clone of $(git -C "$REPO" rev-parse --short HEAD) into $CONTAINER:$CLONE"
git clone --quiet --no-local --branch "$(git -C "$REPO" rev-parse --abbrev-ref HEAD)" "$REPO" "$WORK/clone"
docker exec "$CONTAINER" rm -rf "$CLONE"
docker cp "$WORK/clone" "$CONTAINER:$CLONE"
docker exec "$CONTAINER" chown -R alice: "$CLONE"

# GitHub's runner images have git (checkout's clone; bakery reads the revision labels and the
# <variant>-<short sha> tag from it); the fresh machine got its clone copied in without git.
docker exec "$CONTAINER" bash -c 'command -v git >/dev/null || { apt-get update -qq &&
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends git >/dev/null; }'

log "a local registry on the container's 127.0.0.1:5000 (docker-registry)"
docker exec "$CONTAINER" bash -c 'mkdir -p /var/lib/workflow-registry && cat > /etc/workflow-registry.yml <<EOF
version: 0.1
storage:
  filesystem:
    rootdirectory: /var/lib/workflow-registry
http:
  addr: 127.0.0.1:5000
EOF'
registry_answers() {  # within $1 seconds
  docker exec "$CONTAINER" python3 -c '
import sys, time, urllib.request
deadline = time.monotonic() + float(sys.argv[1])
while True:
    try:
        urllib.request.urlopen("http://127.0.0.1:5000/v2/", timeout=5)
        break
    except OSError:
        if time.monotonic() > deadline:
            raise SystemExit(1)
        time.sleep(0.5)
' "$1"
}
if ! registry_answers 0; then  # a second replay in a kept container reuses the first one's
  docker exec -d "$CONTAINER" bash -c 'exec docker-registry serve /etc/workflow-registry.yml >/var/log/workflow-registry.log 2>&1'
  registry_answers 60 || { log "the registry did not answer on 127.0.0.1:5000 within 60 s"; exit 1; }
fi

log "not replayed: the checks job (the whole unit and Docker suites; fresh-machine.sh runs its commands)"
log "as a self-hosted cpu runner: moby/buildkit (docker-container driver) and Docker Hub are out of reach"
envs=(-e PIP_CERT=/opt/host-ca.pem -e PIP_DISABLE_PIP_VERSION_CHECK=1)
if docker exec "$CONTAINER" test -d /opt/wheels; then
  envs+=(-e PIP_FIND_LINKS=/opt/wheels -e PIP_CONFIG_FILE=/dev/null)
fi
docker exec -u alice "${envs[@]}" -w "$CLONE" "$CONTAINER" bash -lc \
  "/home/alice/bakery/.venv/bin/python scripts/workflow-steps.py --registry 127.0.0.1:5000 \
     --variant $VARIANT --publish --var BAKERY_GPU_RUNNERS=cpu --var BAKERY_BOOTSTRAP_BASE=true \
     --var BAKERY_VARIANTS=$VARIANT \
     --jobs plan --jobs build-test --jobs publish"

log "the registry now serves:"
for ref in "local/staging/bakery:$VARIANT" "local/bakery:$VARIANT"; do
  digest=$(docker exec "$CONTAINER" skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://127.0.0.1:5000/$ref")
  log "  127.0.0.1:5000/$ref $digest"
  echo "$digest" >> "$WORK/digests"
done
[ "$(sort -u "$WORK/digests" | wc -l)" = 1 ] || { log "staging and published digests differ"; exit 1; }
log "PASSED: workflow replayed as alice (non-root, passwordless sudo)"
