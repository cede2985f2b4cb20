#!/usr/bin/env bash
# quickstart.sh - outrig's main job on examples/quickstart, end to end, on a fresh Debian 12
# machine (as root): set up podman and the offline base image, vendor the real MCP
# servers, build outrig, validate the example, build its sandbox image, start the sandbox
# with outrig's hardened settings, and prove each MCP server answers inside it.
# Leaves nothing running.
set -euo pipefail
cd "$(dirname "$0")/.."
EXAMPLE=examples/quickstart
scripts/setup-podman.sh
scripts/vendor-mcp-servers.sh "$EXAMPLE/sandbox/vendor"
echo "==> cargo build --release"
cargo build --release --locked --quiet
OUTRIG="$PWD/target/release/outrig"

echo "==> outrig validate --config $EXAMPLE"
"$OUTRIG" validate --config "$EXAMPLE"

TAG="localhost/outrig-quickstart-tools:latest"
NAME="outrig-quickstart-$$"
cleanup() { podman rm --force --time 0 "$NAME" >/dev/null 2>&1 || true; }
trap cleanup EXIT INT TERM

echo "==> podman build $TAG"
podman build --pull=never --quiet --tag "$TAG" --file "$EXAMPLE/sandbox/Containerfile" "$EXAMPLE/sandbox" >/dev/null
echo "==> podman run (network none, no capabilities, no-new-privileges, read-write workspace)"
podman run --detach --init --pull=never --network=none --cap-drop=ALL \
  --security-opt=no-new-privileges --pids-limit=512 --memory=2g \
  --mount "type=bind,source=$PWD/$EXAMPLE/workspace,target=/workspace" \
  --name "$NAME" "$TAG" sleep infinity >/dev/null
echo "==> MCP servers inside the sandbox"
scripts/mcp-list-tools.py podman exec -i --workdir /workspace --env PYTHONPATH=/opt/mcp/python \
  "$NAME" python3 -m mcp_server_time --local-timezone UTC
scripts/mcp-list-tools.py podman exec -i --workdir /workspace "$NAME" \
  node /opt/mcp/node/node_modules/@modelcontextprotocol/server-filesystem/dist/index.js /workspace 2>/dev/null
cleanup
trap - EXIT INT TERM
echo "==> done: sandbox removed"
