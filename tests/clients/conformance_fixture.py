"""An MCP server on stdio that offers what the official conformance suite's server
scenarios ask of the server under test (tools `test_*`, resources `test://...`, prompts
`test_*_prompt`, logging, completion, subscriptions, sampling and elicitation), so the
suite can be run against `outrig mcp --listen --unprefixed conformance` fronting it in a
sandbox. Standard library only; one thread reads stdin, each request is answered on a
thread of its own, so a tool can ask the client something and wait for the answer.
"""

import json
import sys
import threading
import time

IMAGE = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
AUDIO = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA="

write_lock = threading.Lock()
pending = {}
pending_lock = threading.Lock()
next_id = [0]
subscriptions = set()


def send(message):
    line = json.dumps(message, separators=(",", ":"))
    with write_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def notify(method, params):
    send({"jsonrpc": "2.0", "method": method, "params": params})


def ask(method, params, timeout=30):
    """Send the client a request and wait for its answer."""
    with pending_lock:
        next_id[0] += 1
        rid = "fixture-%d" % next_id[0]
        event = threading.Event()
        pending[rid] = [event, None]
    send({"jsonrpc": "2.0", "id": rid, "method": method, "params": params})
    if not event.wait(timeout):
        raise RuntimeError("no answer to %s" % method)
    answer = pending.pop(rid)[1]
    if "error" in answer:
        raise RuntimeError(answer["error"].get("message", "error"))
    return answer.get("result", {})


def log(level, data):
    notify("notifications/message", {"level": level, "logger": "conformance-fixture", "data": data})


def text(value):
    return {"content": [{"type": "text", "text": value}]}


def empty_schema():
    return {"type": "object", "properties": {}}


def string_schema(name, description):
    return {
        "type": "object",
        "properties": {name: {"type": "string", "description": description}},
        "required": [name],
    }


def tool_logging(_args, _meta):
    for message in ["Tool execution started", "Tool processing data", "Tool execution completed"]:
        notify("notifications/message", {"level": "info", "data": message})
        time.sleep(0.05)
    return text("Tool with logging executed successfully")


def tool_progress(_args, meta):
    token = meta.get("progressToken", 0)
    for step in (0, 50, 100):
        notify(
            "notifications/progress",
            {"progressToken": token, "progress": step, "total": 100, "message": "Completed step %d of 100" % step},
        )
        time.sleep(0.05)
    return text(str(token))


def tool_sampling(args, _meta):
    try:
        result = ask(
            "sampling/createMessage",
            {"messages": [{"role": "user", "content": {"type": "text", "text": args.get("prompt", "")}}], "maxTokens": 100},
        )
        content = result.get("content") or {}
        return text("LLM response: %s" % (content.get("text") or "No response"))
    except Exception as error:
        return text("Sampling not supported or error: %s" % error)


def elicit(message, schema, prefix):
    try:
        result = ask("elicitation/create", {"message": message, "requestedSchema": schema})
        return text("%s: action=%s, content=%s" % (prefix, result.get("action"), json.dumps(result.get("content") or {}, separators=(",", ":"))))
    except Exception as error:
        return text("Elicitation not supported or error: %s" % error)


def tool_elicitation(args, _meta):
    schema = {
        "type": "object",
        "properties": {"response": {"type": "string", "description": "User's response"}},
        "required": ["response"],
    }
    return elicit(args.get("message", ""), schema, "User response")


def tool_elicitation_defaults(_args, _meta):
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "description": "User name", "default": "John Doe"},
            "age": {"type": "integer", "description": "User age", "default": 30},
            "score": {"type": "number", "description": "User score", "default": 95.5},
            "status": {"type": "string", "description": "User status", "enum": ["active", "inactive", "pending"], "default": "active"},
            "verified": {"type": "boolean", "description": "Verification status", "default": True},
        },
        "required": [],
    }
    return elicit("Please review and update the form fields with defaults", schema, "Elicitation completed")


def tool_elicitation_enums(_args, _meta):
    schema = {
        "type": "object",
        "properties": {
            "untitledSingle": {"type": "string", "description": "Select one option", "enum": ["option1", "option2", "option3"]},
            "titledSingle": {
                "type": "string",
                "description": "Select one option with titles",
                "oneOf": [
                    {"const": "value1", "title": "First Option"},
                    {"const": "value2", "title": "Second Option"},
                    {"const": "value3", "title": "Third Option"},
                ],
            },
            "legacyEnum": {
                "type": "string",
                "description": "Select one option (legacy)",
                "enum": ["opt1", "opt2", "opt3"],
                "enumNames": ["Option One", "Option Two", "Option Three"],
            },
            "untitledMulti": {
                "type": "array",
                "description": "Select multiple options",
                "minItems": 1,
                "maxItems": 3,
                "items": {"type": "string", "enum": ["option1", "option2", "option3"]},
            },
            "titledMulti": {
                "type": "array",
                "description": "Select multiple options with titles",
                "minItems": 1,
                "maxItems": 3,
                "items": {
                    "anyOf": [
                        {"const": "value1", "title": "First Choice"},
                        {"const": "value2", "title": "Second Choice"},
                        {"const": "value3", "title": "Third Choice"},
                    ]
                },
            },
        },
        "required": [],
    }
    return elicit("Please select options from the enum fields", schema, "Elicitation completed")


def tool_add(_args, _meta):
    """Offer one more tool, and say the list changed (for outrig's list_changed relay)."""
    TOOLS["added_tool"] = ("A tool added while the server runs", empty_schema(), lambda a, m: text("added tool called"))
    notify("notifications/tools/list_changed", {})
    return text("added a tool")


def tool_error(_args, _meta):
    return {"content": [{"type": "text", "text": "This tool intentionally returns an error for testing"}], "isError": True}


JSON_SCHEMA_2020_12 = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "$defs": {"address": {"type": "object", "properties": {"street": {"type": "string"}, "city": {"type": "string"}}}},
    "properties": {"name": {"type": "string"}, "address": {"$ref": "#/$defs/address"}},
    "additionalProperties": False,
}

TOOLS = {
    "test_simple_text": ("Tests simple text content response", empty_schema(), lambda a, m: text("This is a simple text response for testing.")),
    "test_image_content": ("Tests image content response", empty_schema(), lambda a, m: {"content": [{"type": "image", "data": IMAGE, "mimeType": "image/png"}]}),
    "test_audio_content": ("Tests audio content response", empty_schema(), lambda a, m: {"content": [{"type": "audio", "data": AUDIO, "mimeType": "audio/wav"}]}),
    "test_embedded_resource": (
        "Tests embedded resource content response",
        empty_schema(),
        lambda a, m: {"content": [{"type": "resource", "resource": {"uri": "test://embedded-resource", "mimeType": "text/plain", "text": "This is an embedded resource content."}}]},
    ),
    "test_multiple_content_types": (
        "Tests response with multiple content types (text, image, resource)",
        empty_schema(),
        lambda a, m: {
            "content": [
                {"type": "text", "text": "Multiple content types test:"},
                {"type": "image", "data": IMAGE, "mimeType": "image/png"},
                {"type": "resource", "resource": {"uri": "test://mixed-content-resource", "mimeType": "application/json", "text": json.dumps({"test": "data", "value": 123}, separators=(",", ":"))}},
            ]
        },
    ),
    "test_tool_with_logging": ("Tests tool that emits log messages during execution", empty_schema(), tool_logging),
    "test_tool_with_progress": ("Tests tool that reports progress notifications", empty_schema(), tool_progress),
    "test_error_handling": ("Tests error response handling", empty_schema(), tool_error),
    "test_add_tool": ("Adds the tool added_tool and sends notifications/tools/list_changed", empty_schema(), tool_add),
    "test_sampling": ("Tests server-initiated sampling (LLM completion request)", string_schema("prompt", "The prompt to send to the LLM"), tool_sampling),
    "test_elicitation": ("Tests server-initiated elicitation (user input request)", string_schema("message", "The message to show the user"), tool_elicitation),
    "test_elicitation_sep1034_defaults": ("Tests elicitation with default values per SEP-1034", empty_schema(), tool_elicitation_defaults),
    "test_elicitation_sep1330_enums": ("Tests elicitation with enum schema improvements per SEP-1330", empty_schema(), tool_elicitation_enums),
    "json_schema_2020_12_tool": (
        "Tool with JSON Schema 2020-12 features for conformance testing (SEP-1613)",
        JSON_SCHEMA_2020_12,
        lambda a, m: text("JSON Schema 2020-12 tool called with: %s" % json.dumps(a, separators=(",", ":"))),
    ),
}

RESOURCES = [
    {"uri": "test://static-text", "name": "static-text", "title": "Static Text Resource", "description": "A static text resource for testing", "mimeType": "text/plain"},
    {"uri": "test://static-binary", "name": "static-binary", "title": "Static Binary Resource", "description": "A static binary resource (image) for testing", "mimeType": "image/png"},
    {"uri": "test://watched-resource", "name": "watched-resource", "title": "Watched Resource", "description": "A resource that auto-updates every 3 seconds", "mimeType": "text/plain"},
]

TEMPLATES = [
    {"uriTemplate": "test://template/{id}/data", "name": "template", "title": "Resource Template", "description": "A resource template with parameter substitution", "mimeType": "application/json"},
]

PROMPTS = [
    {"name": "test_simple_prompt", "title": "Simple Test Prompt", "description": "A simple prompt without arguments"},
    {
        "name": "test_prompt_with_arguments",
        "title": "Prompt With Arguments",
        "description": "A prompt with required arguments",
        "arguments": [
            {"name": "arg1", "description": "First test argument", "required": True},
            {"name": "arg2", "description": "Second test argument", "required": True},
        ],
    },
    {
        "name": "test_prompt_with_embedded_resource",
        "title": "Prompt With Embedded Resource",
        "description": "A prompt that includes an embedded resource",
        "arguments": [{"name": "resourceUri", "description": "URI of the resource to embed", "required": True}],
    },
    {"name": "test_prompt_with_image", "title": "Prompt With Image", "description": "A prompt that includes image content"},
]


class Failure(Exception):
    def __init__(self, code, message, data=None):
        self.code, self.message, self.data = code, message, data


def read_resource(uri):
    if uri == "test://static-text":
        return {"contents": [{"uri": uri, "mimeType": "text/plain", "text": "This is the content of the static text resource."}]}
    if uri == "test://static-binary":
        return {"contents": [{"uri": uri, "mimeType": "image/png", "blob": IMAGE}]}
    if uri == "test://watched-resource":
        return {"contents": [{"uri": uri, "mimeType": "text/plain", "text": "Watched resource content"}]}
    if uri.startswith("test://template/") and uri.endswith("/data"):
        ident = uri[len("test://template/") : -len("/data")]
        body = {"id": ident, "templateTest": True, "data": "Data for ID: %s" % ident}
        return {"contents": [{"uri": uri, "mimeType": "application/json", "text": json.dumps(body, separators=(",", ":"))}]}
    raise Failure(-32002, "Resource %s not found" % uri, {"uri": uri})


def get_prompt(name, args):
    if name == "test_simple_prompt":
        return {"messages": [{"role": "user", "content": {"type": "text", "text": "This is a simple prompt for testing."}}]}
    if name == "test_prompt_with_arguments":
        return {"messages": [{"role": "user", "content": {"type": "text", "text": "Prompt with arguments: arg1='%s', arg2='%s'" % (args.get("arg1"), args.get("arg2"))}}]}
    if name == "test_prompt_with_embedded_resource":
        return {
            "messages": [
                {"role": "user", "content": {"type": "resource", "resource": {"uri": args.get("resourceUri"), "mimeType": "text/plain", "text": "Embedded resource content for testing."}}},
                {"role": "user", "content": {"type": "text", "text": "Please process the embedded resource above."}},
            ]
        }
    if name == "test_prompt_with_image":
        return {
            "messages": [
                {"role": "user", "content": {"type": "image", "data": IMAGE, "mimeType": "image/png"}},
                {"role": "user", "content": {"type": "text", "text": "Please analyze the image above."}},
            ]
        }
    raise Failure(-32602, "Prompt %s not found" % name)


def handle(method, params):
    meta = params.get("_meta") or {}
    if method == "initialize":
        asked = params.get("protocolVersion")
        return {
            # A server of the 2025-11-25 era: an older version it knows is kept.
            "protocolVersion": asked if asked in ("2025-06-18", "2025-03-26") else "2025-11-25",
            "capabilities": {
                "tools": {"listChanged": True},
                "resources": {"subscribe": True, "listChanged": True},
                "prompts": {"listChanged": True},
                "logging": {},
                "completions": {},
            },
            "serverInfo": {"name": "outrig-conformance-fixture", "version": "1.0.0"},
        }
    if method == "ping":
        return {}
    if method == "tools/list":
        return {"tools": [{"name": n, "description": d, "inputSchema": s} for n, (d, s, _) in TOOLS.items()]}
    if method == "tools/call":
        entry = TOOLS.get(params.get("name"))
        if entry is None:
            raise Failure(-32602, "Unknown tool: %s" % params.get("name"))
        return entry[2](params.get("arguments") or {}, meta)
    if method == "resources/list":
        return {"resources": RESOURCES}
    if method == "resources/templates/list":
        return {"resourceTemplates": TEMPLATES}
    if method == "resources/read":
        return read_resource(params.get("uri", ""))
    if method == "resources/subscribe":
        subscriptions.add(params.get("uri"))
        log("info", "Subscribed to resource: %s" % params.get("uri"))
        return {}
    if method == "resources/unsubscribe":
        subscriptions.discard(params.get("uri"))
        log("info", "Unsubscribed from resource: %s" % params.get("uri"))
        return {}
    if method == "prompts/list":
        return {"prompts": PROMPTS}
    if method == "prompts/get":
        return get_prompt(params.get("name"), params.get("arguments") or {})
    if method == "logging/setLevel":
        log("info", "Log level set to: %s" % params.get("level"))
        return {}
    if method == "completion/complete":
        return {"completion": {"values": [], "total": 0, "hasMore": False}}
    raise Failure(-32601, "Method not found: %s" % method)


def serve(message):
    rid = message["id"]
    try:
        result = handle(message["method"], message.get("params") or {})
        send({"jsonrpc": "2.0", "id": rid, "result": result})
    except Failure as failure:
        error = {"code": failure.code, "message": failure.message}
        if failure.data is not None:
            error["data"] = failure.data
        send({"jsonrpc": "2.0", "id": rid, "error": error})
    except Exception as error:  # a fixture bug is still an answer
        send({"jsonrpc": "2.0", "id": rid, "error": {"code": -32603, "message": str(error)}})


def main():
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if "method" in message and "id" in message:
            threading.Thread(target=serve, args=(message,), daemon=True).start()
        elif "id" in message:
            with pending_lock:
                waiting = pending.get(message["id"])
            if waiting:
                waiting[1] = message
                waiting[0].set()


main()
