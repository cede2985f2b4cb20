#!/usr/bin/env python3
"""mcp-list-tools.py COMMAND... - start an MCP server over stdio, do the classic handshake
(initialize, notifications/initialized), print its tool names, close its stdin and wait.
Used by scripts/quickstart.sh to prove a sandboxed server answers. Standard library only."""
import json
import subprocess
import sys
import threading

def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    proc = subprocess.Popen(sys.argv[1:], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    timer = threading.Timer(60, proc.kill)
    timer.start()

    def send(message):
        proc.stdin.write(json.dumps(message) + "\n")
        proc.stdin.flush()

    def reply(request_id):
        for line in proc.stdout:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if message.get("id") == request_id:
                return message
        raise SystemExit(f"server closed its output before answering request {request_id}")

    send({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "outrig-quickstart", "version": "0"}}})
    info = reply(1)["result"]
    send({"jsonrpc": "2.0", "method": "notifications/initialized"})
    send({"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}})
    tools = [tool["name"] for tool in reply(2)["result"]["tools"]]
    proc.stdin.close()
    status = proc.wait()
    timer.cancel()
    server = info.get("serverInfo", {})
    print(f"    {server.get('name', '?')} {server.get('version', '')} "
          f"(protocol {info.get('protocolVersion')}): {', '.join(tools)}")
    return 0 if status == 0 else 1

if __name__ == "__main__":
    sys.exit(main())
