#!/usr/bin/env bash
# test-rootless.sh - run the real-podman end-to-end tests a second time as an unprivileged
# user, with rootless podman: apply with the real servers, `outrig mcp` with real clients,
# kill -9 and signals, the workspace's ownership. Run as root after scripts/test.sh's setup
# (podman, the base image, the vendored servers, the test tools); it creates the user
# (subordinate ids, XDG_RUNTIME_DIR), copies the base image into the user's storage, builds
# the test binary as root and runs it as the user.
#
# Environment knobs (all optional):
#   OUTRIG_ROOTLESS_USER   the user the tests run as (default outrig-rootless)
#   OUTRIG_BASE_IMAGE      the base image            (default localhost/outrig-base:bookworm)
set -euo pipefail
cd "$(dirname "$0")/.."
USER_NAME="${OUTRIG_ROOTLESS_USER:-outrig-rootless}"
IMAGE="${OUTRIG_BASE_IMAGE:-localhost/outrig-base:bookworm}"
# The tests that prove the sandbox holds rootless (a name matches every test it is part of).
TESTS=(
  podman::apply_runs_real_servers_and_records_the_session
  podman::kill_9_of_apply_leaves_nothing
  podman::sigint_during_apply_tears_down_and_records
  podman::clean_is_scoped_to_the_project_and_dry_runs
  gateway::gateway_serves_real_clients_like_the_servers_themselves
  gateway::a_tool_writes_as_the_workspace_owner_and_kill_9_leaves_nothing
  gateway::a_group_signal_during_teardown_leaves_nothing
  lifecycle::every_clients_stop_sequence_leaves_a_complete_record
  surface::the_official_conformance_suite_passes_through_the_http_gateway
  surface::the_http_gateway_refuses_requests_it_must_not_serve
)
die() { echo "test-rootless.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root (it creates the user the tests run as)"
start=$SECONDS

echo "==> rootless: user $USER_NAME"
id -u "$USER_NAME" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash "$USER_NAME"
uid=$(id -u "$USER_NAME")
home=$(getent passwd "$USER_NAME" | cut -d: -f6)
# A range of subordinate ids of its own, far from the ones `useradd` hands out.
for file in /etc/subuid /etc/subgid; do
  grep -q "^$USER_NAME:" "$file" || echo "$USER_NAME:1000000000:65536" >> "$file"
done
runtime_dir=/run/user/$uid
install -d -m 0700 -o "$USER_NAME" -g "$USER_NAME" "$runtime_dir"
as_user() {
  (cd "$home" && runuser -u "$USER_NAME" -- env HOME="$home" XDG_RUNTIME_DIR="$runtime_dir" \
    PATH="/usr/local/bin:/usr/bin:/bin" LANG=C.UTF-8 "$@")
}
# Native rootless overlay (kernel 5.13 and later). Left to itself podman 4.3 may fall back to
# vfs here, which copies the whole image for every container and takes seconds to remove one.
conf="$home/.config/containers/storage.conf"
if [ ! -f "$conf" ]; then
  as_user mkdir -p "$home/.config/containers"
  printf '[storage]\ndriver = "overlay"\n' | as_user tee "$conf" >/dev/null
fi
driver=$(as_user podman info --format '{{.Store.GraphDriverName}}' 2>/dev/null || true)
if [ "$driver" != overlay ]; then
  echo "    storage driver '$driver': resetting the user's storage to overlay"
  as_user podman system reset --force >/dev/null 2>&1 || true
fi
as_user podman system migrate >/dev/null 2>&1 || true

echo "==> rootless: base image"
want=$(podman image inspect --format '{{.Id}}' "$IMAGE")
have=$(as_user podman image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)
if [ "$want" != "$have" ]; then
  podman save "$IMAGE" | as_user podman load >/dev/null
  echo "    copied from root's storage"
else
  echo "    already there"
fi

echo "==> rootless: the checkout, readable by $USER_NAME"
# Let the user pass through every directory above $1 (nothing more: no listing, no reading).
traversable() {
  local dir
  dir=$(dirname "$1")
  while [ "$dir" != / ]; do
    [ -n "$(find "$dir" -maxdepth 0 -perm -o+x)" ] || { chmod o+x "$dir"; echo "    o+x $dir"; }
    dir=$(dirname "$dir")
  done
}
# The test binary names the checkout's paths (fixtures, vendored servers, test tools), and
# the test clients' virtualenv names the Python it was made from.
traversable "$(pwd)/."
chmod -R o+rX .
python=$(readlink -f target/test-tools/py/bin/python)
traversable "$python"

echo "==> rootless: build the test binary"
binary=$(cargo test --locked --test it --no-run --message-format=json 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    message = json.loads(line)
    if message.get("reason") == "compiler-artifact" and message.get("executable") and message["target"]["name"] == "it":
        print(message["executable"])')
[ -x "$binary" ] || die "no test binary"
chmod -R o+rX target/debug

echo "==> rootless: ${#TESTS[@]} end-to-end tests as $USER_NAME"
as_user env CI=true RUST_BACKTRACE=1 "$binary" --test-threads=2 "${TESTS[@]}"
echo "==> rootless tests done in $(( SECONDS - start )) s"
