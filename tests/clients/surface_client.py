"""Exercise the whole MCP surface of server-everything (tools, resources, templates,
prompts, completion, logging, progress, sampling, elicitation, roots) with the official
Python SDK, and print what the client saw as one JSON object, so that the same client
talking to the server directly and through `outrig mcp` can be compared.

usage: surface_client.py MODE [--prefix P] -- COMMAND [ARG...]
       surface_client.py MODE [--prefix P] --url URL --token TOKEN

MODE      `classic`: ClientSession.initialize() (2025-11-25 and earlier);
          `discover`: the high-level Client, which opens with server/discover (2026-07-28)
--prefix  taken off tool and prompt names in the report (`everything__` through outrig)
"""

import asyncio
import json
import os
import sys

from mcp import ClientSession, StdioServerParameters, stdio_client, types
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client


def dump(model):
    data = model.model_dump(mode="json", by_alias=True, exclude_none=True)
    data.pop("_meta", None)
    data.pop("resultType", None)
    data.pop("ttlMs", None)
    data.pop("cacheScope", None)
    return data


def arguments():
    args = sys.argv[1:]
    mode = args.pop(0)
    prefix, url, token, command = "", None, None, None
    while args:
        flag = args.pop(0)
        if flag == "--prefix":
            prefix = args.pop(0)
        elif flag == "--url":
            url = args.pop(0)
        elif flag == "--token":
            token = args.pop(0)
        elif flag == "--":
            command = args
            break
    return mode, prefix, url, token, command


async def sampling(_context, params):
    asked = params.messages[0].content.text if params.messages else ""
    return types.CreateMessageResult(
        role="assistant",
        content=types.TextContent(type="text", text="sampled: " + asked),
        model="scripted",
    )


async def elicitation(_context, _params):
    return types.ElicitResult(action="accept", content={"color": "red", "number": 7, "pets": "dogs"})


async def roots(_context):
    return types.ListRootsResult(roots=[types.Root(uri="file:///srv/project", name="project")])


async def exercise(session, prefix, logs):
    out = {}
    strip = lambda name: name[len(prefix) :] if prefix and name.startswith(prefix) else name
    tools = (await session.list_tools()).tools
    out["tools"] = sorted(
        [dict(dump(t), name=strip(t.name)) for t in tools if t.name.startswith(prefix)],
        key=lambda t: t["name"],
    )
    named = {strip(t.name): t.name for t in tools}
    prompts = (await session.list_prompts()).prompts
    out["prompts"] = [dict(dump(p), name=strip(p.name)) for p in prompts]
    prompt = {strip(p.name): p.name for p in prompts}
    out["resources"] = [dump(r) for r in (await session.list_resources()).resources]
    out["templates"] = [dump(t) for t in (await session.list_resource_templates()).resource_templates]
    first = out["resources"][0]["uri"]
    out["read"] = dump(await session.read_resource(first))
    out["read_template"] = dump(await session.read_resource("demo://resource/dynamic/text/2"))
    out["prompt_simple"] = dump(await session.get_prompt(prompt["simple-prompt"]))
    out["prompt_args"] = dump(await session.get_prompt(prompt["args-prompt"], {"city": "Paris", "state": "IDF"}))
    completion = await session.complete(
        types.PromptReference(type="ref/prompt", name=prompt["completable-prompt"]),
        {"name": "department", "value": "E"},
    )
    out["completion"] = dump(completion.completion)
    steps = []

    async def progress(value, total, message):
        steps.append([value, total])

    long = await session.call_tool(
        named["trigger-long-running-operation"], {"duration": 1, "steps": 4}, progress_callback=progress
    )
    out["long_running"] = dump(long)
    out["progress"] = steps
    out["sum"] = dump(await session.call_tool(named["get-sum"], {"a": 2, "b": 3}))
    out["sampling"] = dump(await session.call_tool(named["trigger-sampling-request"], {"prompt": "hi", "maxTokens": 10}))
    out["elicitation"] = dump(await session.call_tool(named["trigger-elicitation-request"], {}))
    out["roots"] = dump(await session.call_tool(named["get-roots-list"], {}))
    await session.set_logging_level("debug")
    toggle = await session.call_tool(named["toggle-simulated-logging"], {})
    out["toggle_logging"] = dump(toggle)
    for _ in range(100):
        if logs:
            break
        await asyncio.sleep(0.1)
    out["got_log_messages"] = bool(logs)
    try:
        await session.call_tool(named["echo"], "not an object")
        out["non_object_arguments"] = "accepted"
    except Exception as error:
        out["non_object_arguments"] = type(error).__name__
    return out


async def main():
    mode, prefix, url, token, command = arguments()
    logs = []

    async def logging(params):
        logs.append(params.level)

    callbacks = dict(
        sampling_callback=sampling,
        elicitation_callback=elicitation,
        list_roots_callback=roots,
        logging_callback=logging,
    )
    if url:
        transport = lambda: streamable_http_client(
            url, http_client=create_mcp_http_client(headers={"Authorization": "Bearer " + token})
        )
    else:
        transport = lambda: stdio_client(StdioServerParameters(command=command[0], args=command[1:], env=dict(os.environ)))
    if mode == "classic":
        async with transport() as streams:
            async with ClientSession(streams[0], streams[1], **callbacks) as session:
                init = await session.initialize()
                out = await exercise(session, prefix, logs)
                out["protocol"] = init.protocol_version
                out["capabilities"] = sorted(dump(init.capabilities).keys())
    else:
        server = transport() if url else StdioServerParameters(command=command[0], args=command[1:], env=dict(os.environ))
        client = Client(server, **callbacks)
        async with client:
            out = await exercise(client, prefix, logs)
            out["protocol"] = client.protocol_version
    print(json.dumps(out, sort_keys=True))


if __name__ == "__main__":
    asyncio.run(main())
