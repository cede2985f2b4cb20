#!/usr/bin/env bash
# quickstart.sh - outrig's main job on examples/quickstart, end to end, on a fresh Debian 12
# machine (as root): set up podman and the offline base image, vendor the real MCP
# servers, build outrig, validate the example, show its plan, apply it (build the image,
# start the hardened sandbox, start each MCP server in it and list its tools over MCP,
# record the session, tear down), and plan again to show nothing is left to do.
set -euo pipefail
cd "$(dirname "$0")/.."
EXAMPLE=examples/quickstart
scripts/setup-podman.sh
scripts/vendor-mcp-servers.sh "$EXAMPLE/sandbox/vendor"
echo "==> cargo build --release"
cargo build --release --locked --quiet
OUTRIG="$PWD/target/release/outrig"
SESSIONS="${OUTRIG_SESSION_ROOT:-$PWD/target/quickstart-sessions}"

echo "==> outrig validate --config $EXAMPLE"
"$OUTRIG" validate --config "$EXAMPLE"

echo "==> outrig plan --config $EXAMPLE"
"$OUTRIG" plan --config "$EXAMPLE" --session-root "$SESSIONS"

echo "==> outrig apply --auto-approve --config $EXAMPLE"
"$OUTRIG" apply --auto-approve --config "$EXAMPLE" --session-root "$SESSIONS" 2>&1 \
  | sed -n '/^session /,$p'

echo "==> outrig plan again"
"$OUTRIG" plan --config "$EXAMPLE" --session-root "$SESSIONS" | tail -1
echo "==> session records in $SESSIONS"
