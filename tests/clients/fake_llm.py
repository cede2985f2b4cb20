"""A scripted OpenAI-compatible Chat Completions endpoint on loopback, for outrig's agent
tests: it replays recorded turns, records every request, and checks that each request's
history is valid (every tool call answered by a tool message).

usage: fake_llm.py SCRIPT LOG PORT_FILE [PORT]

SCRIPT is a JSON list consumed one entry per request:
  {"tool_calls": [[name, arguments], ...]}   an assistant message asking for tool calls
  {"text": "..."}          a final answer; "{tool_results}" is replaced by the contents of
                           the tool messages since the last user message, joined by " | "
  {"status": 429, "headers": {"Retry-After": "1"}}   an error reply
  {"status": 500, "forever": true}                   this reply from now on
  {"reply": {...}}         this body, verbatim: a reply recorded in a provider's own wire
                           format (Chat Completions, Ollama, vLLM, llama.cpp, Anthropic)
  {"events": [...]}        a streamed reply (text/event-stream): each entry an event's
                           data (a JSON value, or a string sent as is, such as "[DONE]");
                           Anthropic events also get their `event:` line. "gap": seconds
                           between events; "stall_after": n stops sending after n events
                           and holds the connection for "stall" seconds
  any entry may add "delay": seconds before answering. In "reply" and "events", the text
  "{tool_results}" is replaced as for "text".
Requests to /v1/messages are checked as Anthropic Messages (every tool_use answered by a
tool_result in the next user message), others as Chat Completions.
LOG gets one JSON line per request: {"authorization": ..., "body": ...}; LOG.timing one
line per reply: milliseconds from receiving the request to the last byte written;
LOG.events one line per streamed event: the time just before it was written (seconds since the epoch)
and its index.
The chosen port is written to PORT_FILE once listening.
"""

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

script = json.load(open(sys.argv[1]))
log_path, port_file = sys.argv[2], sys.argv[3]
lock = threading.Lock()
position = [0]


def anthropic_history_problem(messages):
    open_ids = []
    for message in messages:
        content = message.get("content")
        blocks = content if isinstance(content, list) else []
        if message.get("role") == "user":
            answered = [b.get("tool_use_id") for b in blocks if b.get("type") == "tool_result"]
            missing = [i for i in open_ids if i not in answered]
            if missing:
                return "tool uses %s have no tool_result" % missing
            open_ids = []
        elif message.get("role") == "assistant":
            if open_ids:
                return "tool uses %s unanswered before an assistant message" % open_ids
            open_ids = [b["id"] for b in blocks if b.get("type") == "tool_use"]
    return None


def tool_results(body):
    results = []
    for m in reversed(body.get("messages", [])):
        content = m.get("content")
        if m.get("role") == "tool":
            results.insert(0, content or "")
        elif m.get("role") == "user" and isinstance(content, list) and any(b.get("type") == "tool_result" for b in content):
            for b in reversed(content):
                if b.get("type") == "tool_result":
                    results.insert(0, b.get("content") if isinstance(b.get("content"), str) else json.dumps(b.get("content")))
        elif m.get("role") == "user":
            break
    return results


def substitute(value, replacement):
    if isinstance(value, str):
        return value.replace("{tool_results}", replacement)
    if isinstance(value, list):
        return [substitute(v, replacement) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, replacement) for k, v in value.items()}
    return value


def history_problem(messages):
    open_ids = []
    for message in messages:
        role = message.get("role")
        if role == "tool":
            if message.get("tool_call_id") not in open_ids:
                return "tool message for unknown call %r" % message.get("tool_call_id")
            open_ids.remove(message["tool_call_id"])
            continue
        if open_ids:
            return "calls %s have no tool result before a %s message" % (open_ids, role)
        if role == "assistant":
            open_ids = [c["id"] for c in message.get("tool_calls") or []]
    return None


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, status, body, headers=None):
        data = json.dumps(body).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)
            with lock:
                with open(log_path + ".timing", "a") as timing:
                    timing.write("%.3f\n" % ((time.time() - self.received) * 1000))
        except (BrokenPipeError, ConnectionResetError):
            pass

    def stream(self, events, entry):
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.end_headers()
            for n, event in enumerate(events):
                if entry.get("stall_after") is not None and n >= entry["stall_after"]:
                    self.wfile.flush()
                    time.sleep(entry.get("stall", 30))
                    return
                if isinstance(event, str):
                    data = "data: %s\n\n" % event
                else:
                    name = "event: %s\n" % event["type"] if isinstance(event, dict) and "type" in event and self.path.endswith("/messages") else ""
                    data = "%sdata: %s\n\n" % (name, json.dumps(event))
                written = time.time()
                self.wfile.write(data.encode())
                self.wfile.flush()
                with lock:
                    with open(log_path + ".events", "a") as sent:
                        sent.write("%.6f %d\n" % (written, n))
                if entry.get("gap"):
                    time.sleep(entry["gap"])
            with lock:
                with open(log_path + ".timing", "a") as timing:
                    timing.write("%.3f\n" % ((time.time() - self.received) * 1000))
        except (BrokenPipeError, ConnectionResetError):
            pass

    def do_POST(self):
        self.received = time.time()
        length = int(self.headers.get("Content-Length", 0))
        body = json.loads(self.rfile.read(length) or b"{}")
        with lock:
            with open(log_path, "a") as log:
                log.write(json.dumps({"path": self.path, "authorization": self.headers.get("Authorization"), "x-api-key": self.headers.get("x-api-key"), "anthropic-version": self.headers.get("anthropic-version"), "body": body}) + "\n")
            if self.path.endswith("/messages"):
                problem = anthropic_history_problem(body.get("messages", []))
            else:
                problem = history_problem(body.get("messages", []))
            if position[0] < len(script):
                entry = script[position[0]]
                if not entry.get("forever"):
                    position[0] += 1
            else:
                entry = {"status": 500, "error": "script exhausted"}
        if problem:
            return self.reply(400, {"error": {"message": "invalid history: " + problem}})
        time.sleep(entry.get("delay", 0))
        if "status" in entry:
            return self.reply(entry["status"], {"error": {"message": entry.get("error", "scripted error")}}, entry.get("headers"))
        joined = " | ".join(tool_results(body))
        if "reply" in entry:
            return self.reply(200, substitute(entry["reply"], joined))
        if "events" in entry:
            return self.stream(substitute(entry["events"], joined), entry)
        messages = body.get("messages", [])
        if "tool_calls" in entry:
            calls = [
                {"id": "call_%d_%d" % (len(messages), i), "type": "function",
                 "function": {"name": name, "arguments": json.dumps(arguments)}}
                for i, (name, arguments) in enumerate(entry["tool_calls"])
            ]
            message = {"role": "assistant", "content": None, "tool_calls": calls}
            finish = "tool_calls"
        else:
            message = {"role": "assistant", "content": entry["text"].replace("{tool_results}", joined)}
            finish = "stop"
        self.reply(200, {
            "id": "chatcmpl-test", "object": "chat.completion", "model": body.get("model"),
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": 10 * len(messages), "completion_tokens": 7, "total_tokens": 10 * len(messages) + 7},
        })


server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[4]) if len(sys.argv) > 4 else 0), Handler)
with open(port_file + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
import os
os.rename(port_file + ".tmp", port_file)
server.serve_forever()
