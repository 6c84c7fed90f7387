#!/bin/sh
# Loads this bakery bundle into the local Docker daemon (or $DOCKER_HOST), without bakery.
# Needs only docker, zstd and coreutils.        Usage: sh load.sh [--no-probe]
# Written by bakery @VERSION@ with @ARCHIVE@ and manifest.json; `python build.py load DIR`
# does the same. Order: check the bundle, then the daemon, load untagged, check ids, tag, probe.
set -eu

ARCHIVE=@ARCHIVE@
ARCHIVE_SHA256=@SHA256@
ARCHIVE_BYTES=@BYTES@
NEED_BYTES=@NEED@
KIND="@KIND@"
SINCE=@SINCE@
# image id, then one tag it gets (a line per tag)
IMAGES=@IMAGES@
# layers a delta leaves out: chain id, then which layer it is
REQUIRED=@REQUIRED@
# images that carry bakery-probe: image id, then the accelerator
PROBES=@PROBES@

die() { printf 'error: %s\n' "$*" >&2; exit 1; }
say() { printf '%s\n' "$*" >&2; }

cd "$(dirname "$0")"
here=$(pwd)
probe=yes
if [ "${1:-}" = "--no-probe" ]; then probe=no; fi
command -v docker >/dev/null 2>&1 || die "docker is not installed — load.sh loads images into a Docker daemon — install Docker"
command -v zstd >/dev/null 2>&1 || die "zstd is not installed — the archive is zstd-compressed — install it (apt-get install zstd)"

# 1. The bundle, before Docker is touched.
[ -f manifest.json ] || die "$here is not a complete bundle: manifest.json is missing — the save did not finish or the copy is incomplete — copy the whole directory again"
[ -f "$ARCHIVE" ] || die "$here/$ARCHIVE is missing — manifest.json names it — copy the whole directory again"
case "$(cat manifest.json)" in
  *"\"sha256\": \"$ARCHIVE_SHA256\""*) ;;
  *) die "$here/manifest.json does not belong to $ARCHIVE — it names another archive — copy the bundle directory again, all files together" ;;
esac
size=$(stat -c %s "$ARCHIVE")
[ "$size" -ge "$ARCHIVE_BYTES" ] || die "$here/$ARCHIVE is truncated: $size of $ARCHIVE_BYTES bytes — the copy or the save was interrupted — copy the bundle directory again"
[ "$size" -eq "$ARCHIVE_BYTES" ] || die "$here/$ARCHIVE has $size bytes, manifest.json says $ARCHIVE_BYTES — it is not this bundle's archive — copy the bundle directory again"
say "checking the sha256 of $ARCHIVE ..."
printf '%s  %s\n' "$ARCHIVE_SHA256" "$ARCHIVE" | sha256sum --check --status - \
  || die "$here/$ARCHIVE is corrupt: its sha256 differs from manifest.json — the file was damaged on the way — copy it again"

# 2. The daemon: image store, free space, and for a delta the base layers.
status=$(docker info --format '{{json .DriverStatus}}') || die "no Docker daemon answers — start it, or set DOCKER_HOST"
case "$status" in
  *io.containerd.snapshotter*) die "the daemon uses the containerd image store — bundles are verified on the classic store only — turn the containerd-snapshotter feature off, or use export/import" ;;
esac
root=$(docker info --format '{{.DockerRootDir}}')
if [ -d "$root" ]; then
  free=$(df -B1 --output=avail "$root" | tail -n 1 | tr -d ' ')
  [ "$free" -ge "$NEED_BYTES" ] || die "not enough free space for the load in $root: $free bytes free, about $NEED_BYTES needed — docker load unpacks the archive before applying its layers — free some space (docker image prune) and run again"
else
  say "warning: cannot check free space: the daemon's data root $root is not on this machine"
fi

local_chains() {
  ids=$(docker image ls --all --quiet --no-trunc | sort -u)
  [ -n "$ids" ] || return 0
  # shellcheck disable=SC2086  # one argument per image id
  docker image inspect --format '{{range .RootFS.Layers}}{{.}} {{end}}' $ids | while read -r layers; do
    chain=""
    for diff in $layers; do
      if [ -z "$chain" ]; then
        chain=$diff
      else
        chain="sha256:$(printf '%s %s' "$chain" "$diff" | sha256sum | cut -d ' ' -f 1)"
      fi
      echo "$chain"
    done
  done
}

if [ -n "$REQUIRED" ]; then
  have=$(local_chains)
  missing=""
  while read -r chain what; do
    [ -n "$chain" ] || continue
    case "$have" in
      *"$chain"*) ;;
      *) missing="$missing
  $what (chain $chain)" ;;
    esac
  done <<EOF
$REQUIRED
EOF
  [ -z "$missing" ] || die "delta bundle $here needs base layers this daemon does not have:$missing
— a delta leaves out the layers of the bundle it was made against ($SINCE) — load that bundle first, or carry a full bundle"
fi

# 3. Load without tags, check every image id, then tag.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
say "loading $ARCHIVE ($KIND bundle) ..."
if ! { zstd -dcq -- "$ARCHIVE" || echo failed > "$tmp/zstd"; } | docker load > "$tmp/out" 2> "$tmp/err"; then
  die "docker load failed: $(tail -n 3 "$tmp/err") — nothing was tagged — check the daemon's log"
fi
[ ! -e "$tmp/zstd" ] || die "zstd could not decompress $here/$ARCHIVE — nothing was tagged — copy the bundle again"
while read -r id _; do
  [ -n "$id" ] || continue
  docker image inspect "$id" > /dev/null 2>&1 \
    || die "docker load finished but image $id is not on the daemon — the archive does not hold what manifest.json says; nothing was tagged — save the bundle again"
done <<EOF
$IMAGES
EOF
while read -r id tag; do
  [ -n "$id" ] && [ -n "$tag" ] || continue
  docker tag "$id" "$tag"
  say "loaded $tag ($id)"
done <<EOF
$IMAGES
EOF

# 4. The probe: which torch build, which GPUs, and why not.
[ "$probe" = yes ] || exit 0
json_value() { v=${1#*: }; v=${v%,}; v=${v#\"}; printf '%s' "${v%\"}"; }
verdict_of() {
  verdict="" hint=""
  while IFS= read -r line; do
    case "$line" in
      '  "verdict": '*) verdict=$(json_value "$line") ;;
      '  "hint": '*) hint=$(json_value "$line") ;;
    esac
  done <<EOF
$1
EOF
  [ -z "$verdict" ] || printf '%s — %s' "$verdict" "$hint"
}
bad=0
while read -r id accelerator; do
  [ -n "$id" ] || continue
  set --
  if [ "$accelerator" = rocm ] && [ -e /dev/kfd ]; then
    set -- --device /dev/kfd --security-opt seccomp=unconfined
    [ ! -d /dev/dri ] || set -- "$@" --device /dev/dri
    for node in /dev/kfd /dev/dri/renderD*; do
      [ -e "$node" ] || continue
      gid=$(stat -c %g "$node")
      case " $* " in *" --group-add $gid "*) ;; *) [ "$gid" = 0 ] || set -- "$@" --group-add "$gid" ;; esac
    done
  elif [ "$accelerator" = cuda ] && [ -e /dev/nvidiactl ]; then
    set -- --gpus all
  fi
  out=$(docker run --rm --network none "$@" "$id" bakery-probe 2>&1) || true
  result=$(verdict_of "$out")
  case "$result" in
    "") say "probe $id: probe-failed — $(printf '%s' "$out" | tail -n 2)"; bad=1 ;;
    "ok — "*|"no-gpu — "*) say "probe $id: $result" ;;
    *) say "probe $id: $result"; bad=1 ;;
  esac
done <<EOF
$PROBES
EOF
exit "$bad"
