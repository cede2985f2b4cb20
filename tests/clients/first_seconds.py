"""A real client's first seconds with an MCP server, timed, with the official Python SDK:
the handshake, the tool list, and one call, each with how long after the server's spawn it
was answered, or the error the SDK raised (what a client shows its user).

usage: first_seconds.py MODE CALL -- COMMAND [ARG...]

MODE  `classic`: ClientSession.initialize() (2025-11-25); `discover`: the high-level
      Client, which opens with server/discover (2026-07-28)
CALL  JSON [tool, arguments], called once after the tool list

Prints one JSON object on stdout.
"""

import asyncio
import json
import os
import sys
import time

from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.client import Client


def failure(error):
    return {"exception": type(error).__name__, "message": str(error)}


async def main():
    mode, call = sys.argv[1], json.loads(sys.argv[2])
    command = sys.argv[sys.argv.index("--") + 1 :]
    params = StdioServerParameters(command=command[0], args=command[1:], env=dict(os.environ))
    report = {}
    started = time.monotonic()

    def at():
        return round((time.monotonic() - started) * 1000, 1)

    async def steps(list_tools, call_tool):
        try:
            tools = await list_tools()
            report["tools"] = sorted(t.name for t in tools.tools)
        except Exception as error:
            report["tools_error"] = failure(error)
        report["tools_ms"] = at()
        try:
            result = await call_tool(call[0], call[1])
            report["call"] = result.model_dump(mode="json", by_alias=True, exclude_none=True)
        except Exception as error:
            report["call_error"] = failure(error)
        report["call_ms"] = at()

    if mode == "classic":
        async with stdio_client(params) as (read, write):
            async with ClientSession(read, write) as session:
                result = await session.initialize()
                report["initialize_ms"] = at()
                report["protocol"] = result.protocol_version
                await steps(session.list_tools, session.call_tool)
    else:
        async with Client(params) as client:
            report["initialize_ms"] = at()
            await steps(client.list_tools, client.call_tool)
    print(json.dumps(report))


asyncio.run(main())
