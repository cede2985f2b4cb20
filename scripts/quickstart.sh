#!/usr/bin/env bash
# quickstart.sh - outrig's main job on examples/quickstart, end to end, on a fresh Debian 12
# machine (as root): set up podman and the offline base image, vendor the real MCP
# servers, build outrig, validate the example, show its plan, apply it with a one-shot
# prompt (build the image, start the hardened sandbox and each MCP server in it, run the
# agent: the model calls tools in the sandbox and answers; record the session, tear down),
# and plan again to show nothing is left to do.
#
# No hosted model is reachable on these machines, so the agent talks to a scripted
# OpenAI-compatible endpoint on 127.0.0.1:8080 (tests/clients/fake_llm.py replaying
# scripts/quickstart-llm.json). Point `[providers.local] base-url` at Ollama, vLLM or any
# OpenAI-compatible server to use a real model.
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

LLM_DIR="$(mktemp -d)"
python3 tests/clients/fake_llm.py scripts/quickstart-llm.json "$LLM_DIR/requests.jsonl" \
  "$LLM_DIR/port" "${QUICKSTART_LLM_PORT:-8080}" &
LLM_PID=$!
trap 'kill $LLM_PID 2>/dev/null; rm -rf "$LLM_DIR"' EXIT
for _ in $(seq 100); do [ -f "$LLM_DIR/port" ] && break; sleep 0.1; done
[ -f "$LLM_DIR/port" ] || { echo "the scripted model endpoint did not start (is port 8080 taken?)" >&2; exit 1; }

PROMPT="What is in the workspace, and what time is it in UTC?"
echo "==> outrig apply --auto-approve --config $EXAMPLE --prompt \"$PROMPT\""
"$OUTRIG" apply --auto-approve --config "$EXAMPLE" --session-root "$SESSIONS" \
  --prompt "$PROMPT" 2> >(sed -n '/^session /,$p' >&2)

echo "==> outrig plan again"
"$OUTRIG" plan --config "$EXAMPLE" --session-root "$SESSIONS" | tail -2
echo "==> session records in $SESSIONS"
