#!/usr/bin/env bash
# quickstart.sh - outrig's main job on examples/quickstart, end to end, on a fresh Debian 12
# machine (as root): set up podman and the offline base image, vendor the real MCP
# servers, build outrig, validate the example, show its plan, carry the plan's exact
# podman commands out (build the image, start the hardened sandbox, start each MCP server
# and list its tools over MCP), and show that a second plan has nothing left to build.
# Leaves nothing running.
set -euo pipefail
cd "$(dirname "$0")/.."
EXAMPLE=examples/quickstart
scripts/setup-podman.sh
scripts/vendor-mcp-servers.sh "$EXAMPLE/sandbox/vendor"
echo "==> cargo build --release"
cargo build --release --locked --quiet
OUTRIG="$PWD/target/release/outrig"
SESSIONS=$(mktemp -d)
SESSION="$(date -u +%Y%m%dT%H%M%S)-$(printf '%04x' $((RANDOM % 65536)))"
CONTAINER=""
cleanup() {
  [ -n "$CONTAINER" ] && podman rm --force --time 0 "$CONTAINER" >/dev/null 2>&1 || true
  rm -rf "$SESSIONS"
}
trap cleanup EXIT INT TERM

echo "==> outrig validate --config $EXAMPLE"
"$OUTRIG" validate --config "$EXAMPLE"

echo "==> outrig plan --config $EXAMPLE"
"$OUTRIG" plan --config "$EXAMPLE" --session-root "$SESSIONS" --out "$SESSIONS/plan.json"

# Until `outrig apply` lands, carry out the saved plan's own commands.
step() { # address prefix -> "address<TAB>command" lines of steps that run something
  python3 -c '
import json, sys
plan = json.load(open(sys.argv[1]))
for s in plan["steps"]:
    if s["address"].startswith(sys.argv[2]) and s["command"] and s["action"] != "no_op":
        print(s["address"] + "\t" + s["command"].replace("<session>", sys.argv[3]))
' "$SESSIONS/plan.json" "$1" "$SESSION"
}
while IFS=$'\t' read -r address command; do
  echo "==> $address: build"
  sh -c "$command" >/dev/null
done < <(step image. )
while IFS=$'\t' read -r address command; do
  echo "==> $address: start (no network, no capabilities, no-new-privileges)"
  CONTAINER=$(sh -c "$command")
done < <(step sandbox. )
echo "==> MCP servers inside the sandbox"
while IFS=$'\t' read -r address command; do
  printf '  %s\n' "$address"
  scripts/mcp-list-tools.py sh -c "exec $command" 2>/dev/null
done < <(step mcp. )
podman rm --force --time 0 "$CONTAINER" >/dev/null
CONTAINER=""

echo "==> outrig plan again: the image is current"
"$OUTRIG" plan --config "$EXAMPLE" --session-root "$SESSIONS" | grep -E '^ +(\+|-|~| ) image\.|^Plan|^No changes'
echo "==> done: sandbox removed"
