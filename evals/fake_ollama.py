"""A local fake Ollama server for tests and evals: the real HTTP API, scripted replies, faults.

The agent talks to Ollama through langchain-ollama and the ``ollama`` client, and the failure
modes we must survive (tool calls written as text, string-encoded arguments, HTTP 500s,
timeouts, malformed streams) live at the HTTP boundary. So instead of mocking the client, this
module serves ``/api/chat`` (streamed NDJSON or one JSON object), ``/api/tags``, ``/api/show``
and ``/api/version`` from a thread on ``127.0.0.1:<free port>`` and replays a queue of scripted
replies. Every request is recorded for assertions (``requests``, ``chat_requests``).

Usage::

    with FakeOllama() as fake:
        fake.enqueue(tool_calls=[("fleet_overview", {})])
        fake.enqueue(content="There are 60 devices.")
        ChatOllama(model="llama3.2", base_url=fake.url).invoke("hi")
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

Fault = Literal["http_500", "timeout", "bad_json", "string_args", "drop_connection"]


@dataclass
class Reply:
    """One scripted answer of the fake model (or one fault)."""

    content: str = ""
    tool_calls: list[tuple[str, Any]] = field(default_factory=list)
    fault: Fault | None = None
    delay: float = 0.0  # seconds to wait before answering ("timeout" faults use it)


class FakeOllama:
    """A scripted Ollama HTTP server running in a background thread."""

    def __init__(self, models: tuple[str, ...] = ("llama3.2:latest",), host: str = "127.0.0.1") -> None:
        self.models = list(models)
        self._host = host
        self._queue: deque[Reply] = deque()
        self._lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> "FakeOllama":
        handler = _make_handler(self)
        self._server = ThreadingHTTPServer((self._host, 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-ollama", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "FakeOllama":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeOllama is not started; call start() or use it as a context manager")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # -- scripting -------------------------------------------------------------------------
    def enqueue(self, content: str = "", tool_calls: list[tuple[str, Any]] | None = None, *,
                fault: Fault | None = None, delay: float = 0.0) -> "FakeOllama":
        """Queue the next reply: text, tool calls ``[(name, arguments)]``, or a fault."""
        with self._lock:
            self._queue.append(Reply(content, list(tool_calls or []), fault, delay))
        return self

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._queue)

    @property
    def chat_requests(self) -> list[dict[str, Any]]:
        """The JSON bodies of every ``/api/chat`` request, oldest first."""
        return [r["body"] for r in self.requests if r["path"] == "/api/chat"]

    def _next_reply(self) -> Reply | None:
        with self._lock:
            return self._queue.popleft() if self._queue else None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def _make_handler(fake: FakeOllama) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:  # keep test output clean
            pass

        def _body(self) -> dict[str, Any]:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                return json.loads(raw or b"{}")
            except ValueError:
                return {"_raw": raw.decode("utf-8", "replace")}

        def _send_json(self, payload: Any, status: int = 200) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            fake.requests.append({"method": "GET", "path": self.path, "body": None})
            if self.path == "/api/tags":
                self._send_json({"models": [
                    {"name": m, "model": m, "modified_at": _now(), "size": 1, "digest": "0" * 64,
                     "details": {"format": "gguf", "family": "llama", "parameter_size": "3B",
                                 "quantization_level": "Q4_K_M"}}
                    for m in fake.models]})
            elif self.path == "/api/version":
                self._send_json({"version": "0.0.0-fake"})
            elif self.path in ("/", ""):
                self._send_json("Ollama is running")
            else:
                self._send_json({"error": f"not found: {self.path}"}, 404)

        def do_HEAD(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_POST(self) -> None:  # noqa: N802
            body = self._body()
            fake.requests.append({"method": "POST", "path": self.path, "body": body})
            if self.path == "/api/show":
                self._send_json({"modelfile": "", "parameters": "", "template": "",
                                 "details": {"family": "llama"}, "capabilities": ["completion", "tools"],
                                 "model_info": {"llama.context_length": 131072}})
            elif self.path == "/api/chat":
                self._chat(body)
            else:
                self._send_json({"error": f"not found: {self.path}"}, 404)

        def _chat(self, body: dict[str, Any]) -> None:
            model = body.get("model", "")
            if not any(model == m or m.split(":")[0] == model for m in fake.models):
                self._send_json({"error": f"model \"{model}\" not found, try pulling it first"}, 404)
                return
            reply = fake._next_reply()
            if reply is None:
                self._send_json({"error": "fake ollama: no scripted reply left"}, 500)
                return
            if reply.delay or reply.fault == "timeout":
                time.sleep(reply.delay or 5.0)
            if reply.fault == "http_500":
                self._send_json({"error": "llama runner process has terminated: exit status 2"}, 500)
                return
            if reply.fault == "drop_connection":
                self.close_connection = True
                self.wfile.flush()
                return
            calls = []
            for name, args in reply.tool_calls:
                if reply.fault == "string_args" and not isinstance(args, str):
                    args = json.dumps(args)
                calls.append({"function": {"name": name, "arguments": args}})
            message: dict[str, Any] = {"role": "assistant", "content": reply.content}
            done = {"model": model, "created_at": _now(), "done": True, "done_reason": "stop",
                    "total_duration": 1_000_000, "load_duration": 1000, "prompt_eval_count": 10,
                    "prompt_eval_duration": 1000, "eval_count": 5, "eval_duration": 1000}
            if body.get("stream", True) is False:
                if calls:
                    message["tool_calls"] = calls
                self._send_json({**done, "message": message})
                return
            lines: list[str] = []
            pieces = _split(reply.content) if reply.content else []
            for piece in pieces:
                lines.append(json.dumps({"model": model, "created_at": _now(),
                                         "message": {"role": "assistant", "content": piece}, "done": False}))
            if calls:
                lines.append(json.dumps({"model": model, "created_at": _now(),
                                         "message": {"role": "assistant", "content": "", "tool_calls": calls},
                                         "done": False}))
            if reply.fault == "bad_json":
                lines.append('{"model": "' + model + '", "message": {"role": "assistant", "content": "tr')
            lines.append(json.dumps({**done, "message": {"role": "assistant", "content": ""}}))
            data = ("\n".join(lines) + "\n").encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-ndjson")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


def _split(text: str, size: int = 12) -> list[str]:
    """Cut text into stream-sized pieces (so streaming is exercised, not just one chunk)."""
    return [text[i:i + size] for i in range(0, len(text), size)]


__all__ = ["FakeOllama", "Reply", "Fault"]
