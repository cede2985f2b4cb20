#!/usr/bin/env bash
# test.sh - run outrig's whole test suite on a fresh Debian 12 machine (as root):
# installs podman + runc and configures them, builds the offline base image, vendors the
# real MCP servers the end-to-end tests run, installs the test tools, then `cargo test`.
# Every step is idempotent; a second run goes straight to the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
scripts/setup-podman.sh
scripts/vendor-mcp-servers.sh examples/quickstart/sandbox/vendor
scripts/install-test-tools.sh
echo "==> cargo test"
cargo test --locked "$@"
echo "==> tests done in $(( SECONDS - start )) s"
