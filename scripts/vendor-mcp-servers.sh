#!/usr/bin/env bash
# vendor-mcp-servers.sh DEST - install real third-party MCP servers from PyPI and npm into
# DEST/python and DEST/node, so a Containerfile can COPY them into a sandbox image that
# has no network. Versions are pinned so every machine builds the same image.
#
#   DEST/python  mcp-server-time, mcp-server-git        (PYTHONPATH=/opt/mcp/python)
#   DEST/node    @modelcontextprotocol/server-filesystem, server-everything
#
# Idempotent: a stamp file records the recipe; re-runs with the same recipe do nothing.
set -euo pipefail

DEST="${1:?usage: vendor-mcp-servers.sh DEST}"
PY_PACKAGES="mcp-server-time==2026.10.19 mcp-server-git==2026.10.19"
NPM_PACKAGES="@modelcontextprotocol/server-filesystem@2026.8.31 @modelcontextprotocol/server-everything@2026.8.31"
RECIPE="v1 py: $PY_PACKAGES npm: $NPM_PACKAGES"
STAMP="$DEST/.recipe"

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$RECIPE" ]; then
  echo "==> MCP servers in $DEST: up to date"
  exit 0
fi
command -v npm >/dev/null || { echo "vendor-mcp-servers.sh: npm is needed (apt-get install npm)" >&2; exit 1; }
start=$SECONDS
rm -rf "$DEST/python" "$DEST/node" "$STAMP"
mkdir -p "$DEST/python" "$DEST/node"
echo "==> pip: $PY_PACKAGES"
# shellcheck disable=SC2086
python3 -m pip install --quiet --disable-pip-version-check --no-warn-conflicts \
  --root-user-action=ignore --target "$DEST/python" $PY_PACKAGES
echo "==> npm: $NPM_PACKAGES"
# shellcheck disable=SC2086
npm install --silent --no-audit --no-fund --no-update-notifier --prefix "$DEST/node" $NPM_PACKAGES
printf '%s' "$RECIPE" > "$STAMP"
echo "    [vendor] $(( SECONDS - start )) s"
