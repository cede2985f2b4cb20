#!/usr/bin/env bash
# setup-podman.sh - install and configure podman for outrig on a
# Debian 12 (bookworm) machine of the project's kind, then build the offline base
# image localhost/outrig-base:bookworm (real Debian userland: bash, coreutils,
# apt, python3, node, git) from the Debian mirror that apt on this machine
# already uses. No container registry is contacted.
#
# Idempotent: packages, config and image are only (re)made when missing or when
# the image recipe changed. Needs root. Prints a timing line per step.
#
# Environment knobs (all optional):
#   OUTRIG_BASE_IMAGE     image name            (default localhost/outrig-base:bookworm)
#   OUTRIG_PROXY_IMAGE    egress proxy image    (default localhost/outrig-proxy:bookworm: Squid)
#   OUTRIG_BASE_INCLUDE   extra Debian packages (default python3,ca-certificates,nodejs,git;
#                         nodejs runs the npm MCP servers, git the git server)
#   OUTRIG_DEBIAN_MIRROR  mirror URL            (default: read from /etc/apt/sources.list*)
#   OUTRIG_FORCE_REBUILD  1 = rebuild the image even if it is up to date
#   OUTRIG_BOOTSTRAP      mmdebstrap (default when installed) or debootstrap (slower fallback)
#   OUTRIG_WRITE_ETC      0 = do not write /etc/containers/containers.conf.d/50-outrig.conf;
#                         the same settings are always written to $OUTRIG_CONF_OUT too
#   OUTRIG_CONF_OUT       where to write a standalone containers.conf usable as
#                         CONTAINERS_CONF=... (default /var/lib/outrig/containers.conf)
set -euo pipefail

IMAGE="${OUTRIG_BASE_IMAGE:-localhost/outrig-base:bookworm}"
PROXY_IMAGE="${OUTRIG_PROXY_IMAGE:-localhost/outrig-proxy:bookworm}"
INCLUDE="${OUTRIG_BASE_INCLUDE:-python3,ca-certificates,nodejs,git}"
FORCE="${OUTRIG_FORCE_REBUILD:-0}"
BOOTSTRAP="${OUTRIG_BOOTSTRAP:-auto}"
WRITE_ETC="${OUTRIG_WRITE_ETC:-1}"
CONF_OUT="${OUTRIG_CONF_OUT:-/var/lib/outrig/containers.conf}"
DROPIN=/etc/containers/containers.conf.d/50-outrig.conf
SUITE=bookworm

now_ms() { local t=${EPOCHREALTIME/./}; echo $(( t / 1000 )); }
fmt_s() { printf '%d.%d s' $(( $1 / 1000 )) $(( ($1 % 1000) / 100 )); }
T0=$(now_ms)
step_start() { S0=$(now_ms); echo "==> $*"; }
step_end() { echo "    [$1] $(fmt_s $(( $(now_ms) - S0 )))"; }
die() { echo "setup-podman.sh: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root"

export DEBIAN_FRONTEND=noninteractive

# ---------------------------------------------------------------- 1. packages
# podman (pulls crun, conmon, netavark, uidmap, slirp4netns, fuse-overlayfs),
# runc (crun 1.8 refuses this kernel's hybrid cgroup layout), mmdebstrap (fast
# rootfs builder), debootstrap (fallback).
step_start "packages: podman runc mmdebstrap debootstrap"
PKGS="podman runc mmdebstrap debootstrap"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "    installing:$missing"
  apt-get -o DPkg::Lock::Timeout=300 update -qq
  # shellcheck disable=SC2086
  apt-get -o DPkg::Lock::Timeout=300 install -y -qq $missing >/dev/null
else
  echo "    already installed"
fi
step_end packages

# ---------------------------------------------------------------- 2. config
# Two settings are needed on this kind of machine:
#  * runtime runc: crun 1.8.1 fails with "cgroups in hybrid mode not supported"
#    (cgroup v1 + a cgroup2 mount carrying the hugetlb controller), even with --cgroups=disabled.
#  * ulimits: rootful podman asks the runtime for nofile=nproc=1048576, but the
#    sandbox has no CAP_SYS_RESOURCE and a hard nofile limit of 20000 (and podman itself
#    runs with nproc 32768), so container start fails with
#    "error setting rlimit type 7 (NOFILE) / 6 (NPROC): operation not permitted".
#    Values must be <= the hard limits of the process that runs podman; we use
#    min(hard, 65536) for nofile and min(hard, 4096) for nproc.
step_start "config: runtime=runc, ulimits"
hn=$(ulimit -Hn); hu=$(ulimit -Hu)
[ "$hn" = unlimited ] && hn=65536
[ "$hu" = unlimited ] && hu=4096
nofile=$(( hn < 65536 ? hn : 65536 ))
nproc=$(( hu < 4096 ? hu : 4096 ))
CONF_BODY="# written by outrig scripts/setup-podman.sh
[containers]
default_ulimits = [\"nofile=${nofile}:${nofile}\", \"nproc=${nproc}:${nproc}\"]

[engine]
runtime = \"runc\"
cgroup_manager = \"cgroupfs\"
events_logger = \"file\"
"
write_if_changed() { # $1 path ; content on stdin
  local tmp; tmp=$(mktemp)
  cat >"$tmp"
  if [ -f "$1" ] && cmp -s "$tmp" "$1"; then rm -f "$tmp"; echo "    unchanged: $1"; return; fi
  mkdir -p "$(dirname "$1")"; mv "$tmp" "$1"; chmod 644 "$1"; echo "    wrote: $1"
}
printf '%s' "$CONF_BODY" | write_if_changed "$CONF_OUT"
if [ "$WRITE_ETC" = 1 ]; then
  printf '%s' "$CONF_BODY" | write_if_changed "$DROPIN"
fi
# When CONTAINERS_CONF is set, podman 4.3 reads only that file (no /etc, no drop-ins).
if [ -n "${CONTAINERS_CONF:-}" ] && [ "$CONTAINERS_CONF" != "$CONF_OUT" ]; then
  echo "    note: CONTAINERS_CONF=$CONTAINERS_CONF is set; using $CONF_OUT for this script instead"
fi
if [ "$WRITE_ETC" != 1 ] || [ -n "${CONTAINERS_CONF:-}" ]; then
  export CONTAINERS_CONF="$CONF_OUT"
fi
rt=$(podman info --format '{{.Host.OCIRuntime.Name}}' 2>/dev/null || true)
[ "$rt" = runc ] || die "podman still uses runtime '$rt' (expected runc)"
echo "    runtime=$rt nofile=$nofile nproc=$nproc"
# Rootful `--userns=auto` (outrig's sandboxes for a root-owned, read-only workspace) takes
# each container's ids from the `containers` user's subordinate range.
for f in /etc/subuid /etc/subgid; do
  grep -q '^containers:' "$f" 2>/dev/null || echo "containers:2147483647:2147483648" >> "$f"
done
step_end config

# ---------------------------------------------------------------- 3. base image
find_mirror() {
  if [ -n "${OUTRIG_DEBIAN_MIRROR:-}" ]; then echo "$OUTRIG_DEBIAN_MIRROR"; return 0; fi
  local m=""
  # deb822 (*.sources): first enabled "Types: deb" stanza whose Suites lists $SUITE
  if compgen -G '/etc/apt/sources.list.d/*.sources' >/dev/null; then
    m=$(awk -v suite="$SUITE" '
      BEGIN { RS=""; FS="\n" }
      {
        types=""; uris=""; suites=""; enabled="yes"
        for (i = 1; i <= NF; i++) {
          if ($i ~ /^Types:/)  types = " " $i " "
          if ($i ~ /^URIs:/)   { uris = $i; sub(/^URIs:[ \t]*/, "", uris) }
          if ($i ~ /^Suites:/) suites = " " $i " "
          if ($i ~ /^Enabled:[ \t]*no/) enabled = "no"
        }
        if (enabled == "yes" && types ~ /[ \t]deb[ \t]/ && suites ~ ("[ \t]" suite "[ \t]")) {
          split(uris, u, /[ \t]+/); print u[1]; exit
        }
      }' /etc/apt/sources.list.d/*.sources)
  fi
  # one-line format (sources.list, *.list): "deb [opts] URI suite components"
  if [ -z "$m" ]; then
    m=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
        | sed -E 's/\[[^]]*\]//' | awk -v suite="$SUITE" '$1 == "deb" && $3 == suite { print $2; exit }')
  fi
  [ -n "$m" ] && echo "$m"
}

if [ "$BOOTSTRAP" = auto ]; then
  if command -v mmdebstrap >/dev/null; then BOOTSTRAP=mmdebstrap; else BOOTSTRAP=debootstrap; fi
fi
build_image() {
  local IMAGE=$1 INCLUDE=$2 RECIPE RECIPE_ID have_id OLD_ID MIRROR new_id
  RECIPE="v1 $BOOTSTRAP suite=$SUITE variant=minbase include=$INCLUDE merged-usr slim=doc,man,locale"
  RECIPE_ID=$(printf '%s' "$RECIPE" | sha256sum | cut -c1-16)
  step_start "image: $IMAGE"
  have_id=$(podman image inspect --format '{{index .Labels "org.outrig.base-recipe"}}' "$IMAGE" 2>/dev/null || true)
  if [ "$FORCE" != 1 ] && [ "$have_id" = "$RECIPE_ID" ]; then
    echo "    up to date (recipe $RECIPE_ID)"
  else
    OLD_ID=$(podman image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)
    MIRROR=$(find_mirror) || die "could not find a deb line for $SUITE in /etc/apt/sources.list*; set OUTRIG_DEBIAN_MIRROR"
    echo "    mirror: $MIRROR   recipe: $RECIPE"
    CHANGES=(
      --change 'CMD ["/bin/bash"]'
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
      --change 'ENV LANG=C.UTF-8'
      --change "LABEL org.outrig.base-recipe=$RECIPE_ID"
    )
    if [ "$BOOTSTRAP" = mmdebstrap ]; then
      # ~25-40 s on 2 cores: parallel downloads, tarball streamed straight into podman import.
      mmdebstrap --quiet --variant=minbase --mode=root \
        --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
        --include="$INCLUDE" \
        --aptopt='Acquire::Check-Valid-Until "false"' \
        --aptopt='Acquire::Retries "3"' \
        --dpkgopt='path-exclude=/usr/share/doc/*' \
        --dpkgopt='path-include=/usr/share/doc/*/copyright' \
        --dpkgopt='path-exclude=/usr/share/man/*' \
        --dpkgopt='path-exclude=/usr/share/locale/*' \
        "$SUITE" - "$MIRROR" 2>"${TMPDIR:-/tmp}/outrig-mmdebstrap.log" \
        | podman import --quiet "${CHANGES[@]}" - "$IMAGE" >/dev/null \
        || { tail -20 "${TMPDIR:-/tmp}/outrig-mmdebstrap.log" >&2; die "mmdebstrap/podman import failed"; }
    else
      # fallback: debootstrap (~65 s minbase, ~100 s with python3+nodejs)
      dir=$(mktemp -d /var/tmp/outrig-rootfs.XXXXXX)
      trap 'rm -rf "$dir"' EXIT
      debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$dir" "$MIRROR" >"${TMPDIR:-/tmp}/outrig-debootstrap.log" 2>&1 \
        || { tail -20 "${TMPDIR:-/tmp}/outrig-debootstrap.log" >&2; die "debootstrap failed"; }
      rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/* "$dir"/usr/share/man/* "$dir"/usr/share/locale/*
      find "$dir"/usr/share/doc -type f ! -name copyright -delete 2>/dev/null || true
      tar --numeric-owner -C "$dir" -c . | podman import --quiet "${CHANGES[@]}" - "$IMAGE" >/dev/null
      rm -rf "$dir"; trap - EXIT
    fi
    new_id=$(podman image inspect --format '{{.Id}}' "$IMAGE")
    if [ -n "${OLD_ID:-}" ] && [ "$OLD_ID" != "$new_id" ]; then
      podman rmi "$OLD_ID" >/dev/null 2>&1 || true   # drop the superseded, now untagged image
    fi
    echo "    built: $(podman image inspect --format '{{.Id}} {{.Size}}' "$IMAGE" | awk '{printf "%.12s %d MB", $1, $2/1e6}')"
  fi
  step_end image
}
build_image "$IMAGE" "$INCLUDE"
# The egress proxy (Squid) and its probes (bash, getent, timeout) for sandboxes with an
# allow-list; outrig's `[engine] proxy-image` default.
build_image "$PROXY_IMAGE" "squid"

# ---------------------------------------------------------------- 4. smoke test
step_start "smoke test: podman run + podman exec -i"
name="outrig-setup-smoke-$$"
podman run --rm --pull never --network none "$IMAGE" \
  bash -c 'echo "    $(. /etc/os-release; echo $PRETTY_NAME), $(bash --version | head -1 | cut -d" " -f1-4), $(ls --version | head -1)"; command -v python3 >/dev/null && echo "    $(python3 --version)"; true'
podman run -d --pull never --network none --name "$name" "$IMAGE" sleep 120 >/dev/null
trap 'podman rm -f -t 0 "$name" >/dev/null 2>&1 || true' EXIT
got=$(printf '{"jsonrpc":"2.0","id":1,"method":"ping"}\n' | podman exec -i "$name" cat)
[ "$got" = '{"jsonrpc":"2.0","id":1,"method":"ping"}' ] || die "podman exec -i round trip failed: $got"
podman rm -f -t 0 "$name" >/dev/null; trap - EXIT
echo "    exec -i stdin/stdout round trip ok"
step_end smoke

echo "==> total $(fmt_s $(( $(now_ms) - T0 )))"
if [ "$WRITE_ETC" != 1 ]; then
  echo "    use: export CONTAINERS_CONF=$CONF_OUT"
fi
