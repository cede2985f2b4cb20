#!/usr/bin/env bash
# install-test-tools.sh - the third-party programs outrig's tests drive, installed from the
# npm registry into target/test-tools (idempotent):
#   taplo  (@taplo/cli)  checks the examples against schema/outrig.schema.json as an editor would
set -euo pipefail
cd "$(dirname "$0")/.."
DEST="${OUTRIG_TEST_TOOLS:-$PWD/target/test-tools}"
PACKAGES="@taplo/cli@0.7.0"
STAMP="$DEST/.recipe"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$PACKAGES" ]; then
  echo "==> test tools in $DEST: up to date"
  exit 0
fi
start=$SECONDS
mkdir -p "$DEST"
echo "==> npm: $PACKAGES"
# shellcheck disable=SC2086
npm install --silent --no-audit --no-fund --no-update-notifier --prefix "$DEST" $PACKAGES
printf '%s' "$PACKAGES" > "$STAMP"
echo "    [test tools] $(( SECONDS - start )) s"
