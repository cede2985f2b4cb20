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
  any entry may add "delay": seconds before answering.
LOG gets one JSON line per request: {"authorization": ..., "body": ...}; LOG.timing one
line per reply: milliseconds from receiving the request to the last byte written.
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

    def do_POST(self):
        self.received = time.time()
        length = int(self.headers.get("Content-Length", 0))
        body = json.loads(self.rfile.read(length) or b"{}")
        with lock:
            with open(log_path, "a") as log:
                log.write(json.dumps({"path": self.path, "authorization": self.headers.get("Authorization"), "body": body}) + "\n")
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
            results = []
            for m in reversed(messages):
                if m.get("role") == "user":
                    break
                if m.get("role") == "tool":
                    results.insert(0, m.get("content", ""))
            message = {"role": "assistant", "content": entry["text"].replace("{tool_results}", " | ".join(results))}
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
