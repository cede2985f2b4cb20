#!/usr/bin/env bash
# install-test-tools.sh - the third-party programs outrig's tests drive, installed into
# target/test-tools (idempotent):
#   taplo      (npm @taplo/cli)                    checks the examples against the schema as an editor would
#   inspector  (npm @modelcontextprotocol/inspector) a real MCP client: `mcp-inspector --cli`
#   py/        (PyPI mcp, in a virtualenv)         the official Python MCP SDK, a real MCP client
#   tombi      (PyPI tombi, in that virtualenv)    the other TOML editor engine: lints the examples offline
set -euo pipefail
cd "$(dirname "$0")/.."
DEST="${OUTRIG_TEST_TOOLS:-$PWD/target/test-tools}"
NPM_PACKAGES="@taplo/cli@0.7.0 @modelcontextprotocol/inspector@2.12.0"
PY_PACKAGES="mcp==2.3.0 tombi==1.9.6"
RECIPE="v3 npm: $NPM_PACKAGES py: $PY_PACKAGES"
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
echo "==> pip (virtualenv $DEST/py): $PY_PACKAGES"
rm -rf "$DEST/py"
python3 -m venv "$DEST/py"
# shellcheck disable=SC2086
"$DEST/py/bin/pip" install --quiet --disable-pip-version-check $PY_PACKAGES
printf '%s' "$RECIPE" > "$STAMP"
echo "    [test tools] $(( SECONDS - start )) s"
