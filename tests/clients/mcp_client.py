"""Drive an MCP server over stdio with the official Python SDK, as a real client would.

usage: mcp_client.py MODE CALLS -- COMMAND [ARG...]
       mcp_client.py http CALLS -- URL      (Streamable HTTP, bearer token from MCP_TOKEN,
                                             Host header from MCP_HOST when set)

MODE   `classic`: ClientSession.initialize() (the handshake of 2025-11-25 and earlier);
       `discover`: the high-level Client, which opens with server/discover (2026-07-28);
       `http`: ClientSession.initialize() over Streamable HTTP
CALLS  JSON list of [tool, arguments]; each is called in order

Prints one JSON object on stdout: the protocol version, the tool names, and each call's
result as the SDK parsed it (or its error).
"""

import asyncio
import json
import os
import sys

from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client


def dump(result):
    data = result.model_dump(mode="json", by_alias=True, exclude_none=True)
    data.pop("_meta", None)
    data.pop("resultType", None)
    return data


async def run_calls(call, calls):
    results = []
    for tool, arguments in calls:
        try:
            results.append(dump(await call(tool, arguments)))
        except Exception as error:  # the SDK raises for JSON-RPC errors
            results.append({"exception": type(error).__name__, "message": str(error)})
    return results


async def main():
    mode, calls = sys.argv[1], json.loads(sys.argv[2])
    command = sys.argv[sys.argv.index("--") + 1 :]
    params = StdioServerParameters(command=command[0], args=command[1:], env=dict(os.environ))
    if mode == "http":
        headers = {"Authorization": "Bearer " + os.environ["MCP_TOKEN"]}
        if os.environ.get("MCP_HOST"):
            headers["Host"] = os.environ["MCP_HOST"]
        http = create_mcp_http_client(headers=headers)
        async with streamable_http_client(command[0], http_client=http) as streams:
            async with ClientSession(streams[0], streams[1]) as session:
                init = await session.initialize()
                tools = (await session.list_tools()).tools
                results = await run_calls(session.call_tool, calls)
                out = {"protocol": init.protocol_version, "server": init.server_info.name}
    elif mode == "classic":
        async with stdio_client(params) as (read, write):
            async with ClientSession(read, write) as session:
                init = await session.initialize()
                tools = (await session.list_tools()).tools
                results = await run_calls(session.call_tool, calls)
                out = {"protocol": init.protocol_version, "server": init.server_info.name}
    else:
        async with Client(params) as client:
            tools = (await client.list_tools()).tools
            results = await run_calls(client.call_tool, calls)
            out = {"protocol": client.protocol_version, "server": client.server_info.name}
    out["tools"] = [tool.name for tool in tools]
    out["results"] = results
    print(json.dumps(out))


asyncio.run(main())
