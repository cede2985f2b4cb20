#!/usr/bin/env bash
# test.sh - run outrig's whole test suite on a fresh Debian 12 machine (as root):
# installs podman + runc and configures them, builds the offline base image, vendors the
# real MCP servers the end-to-end tests run, installs the test tools, then `cargo test`, then
# (as root) the end-to-end tests again as an unprivileged user on rootless podman
# (scripts/test-rootless.sh).
# Every step is idempotent; a second run goes straight to the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
scripts/setup-podman.sh
scripts/vendor-mcp-servers.sh examples/quickstart/sandbox/vendor
scripts/install-test-tools.sh
echo "==> cargo test"
cargo test --locked "$@"
# As root, the end-to-end tests run again as an unprivileged user on rootless podman.
if [ "$(id -u)" = 0 ] && [ "$#" = 0 ]; then
  scripts/test-rootless.sh
fi
echo "==> tests done in $(( SECONDS - start )) s"
