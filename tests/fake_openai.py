"""A loopback OpenAI-compatible server for the openai translator's tests and benchmark.

:class:`FakeOpenAI` runs a ``ThreadingHTTPServer`` on 127.0.0.1 (a free port) in a daemon thread and
answers ``POST /v1/chat/completions`` and ``POST /v1/completions`` with the fields clients read (``id``,
``object``, ``model``, ``choices[0].message.content`` or ``choices[0].text``, ``finish_reason``,
``usage``). No model: the source text is what follows the first blank line of the prompt (where
``DEFAULT_PROMPT`` puts it), the target language is read from "... to <Language>.", and the answer
is ``table[(text, lang)]`` when the table has one, else :func:`fake_translation`
(``"[de] " + text.swapcase()``: reversible, ``{0}`` sentinels unchanged).

Faults, per source text: ``script[text]`` is a list consumed one fault per request (then the text
succeeds), ``always[text]`` applies to every request. A fault is one of:

* ``"500"``, ``"502"``, ``"503"``, ``"400"``, ``"401"``, ``"404"``: that status with a JSON error body
  (the 401 body echoes the ``Authorization`` header it got, like a careless server);
* ``"429:<s>"`` / ``"503:<s>"``: that status with ``Retry-After: <s>``; ``"429:date:<s>"``: with an
  HTTP date at least ``s`` seconds ahead (rounded up to a whole second);
* ``"malformed"`` (a 200 whose body is not JSON), ``"nochoices"`` (``choices: []``), ``"empty"``
  (an empty translation), ``"length"`` (``finish_reason: length``), ``"chatty"`` (the translation
  as ``Translation: "..."``);
* ``"drop"``: the connection is closed without an answer;
* ``"slow:<s>"``: the answer comes after ``s`` seconds (longer than the client's timeout).

``latency_s`` delays every answer (a model server's work). Every request is recorded
(:class:`Seen`: arrival and end times, text, target, payload, ``Authorization`` header, fault) and
``max_in_flight`` is the largest number of requests handled at once.

Use it as a context manager or through the ``fake_openai`` fixture (import it into a test module).
"""

from __future__ import annotations

import email.utils
import json
import math
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from corpusalign.translate.base import LANGUAGE_NAMES

_CODES = {name: code for code, name in LANGUAGE_NAMES.items()}
_TARGET = re.compile(r"\bto ([A-Z][a-z]+)\b")


def fake_translation(text: str, lang: str) -> str:
    """The fake server's translation of ``text`` into ``lang`` (when its table has none)."""
    return f"[{lang}] {text.swapcase()}"


def source_of(prompt: str) -> tuple[str, str]:
    """(source text, target code) of a ``DEFAULT_PROMPT``-shaped prompt."""
    head, _, text = prompt.partition("\n\n")
    if not text:
        head, text = "", prompt
    m = _TARGET.search(head)
    return text, _CODES.get(m.group(1), "xx") if m else "xx"


@dataclass
class Seen:
    """One request as the server saw it (times from ``time.monotonic()``; ``wall`` from ``time.time()``)."""

    path: str
    text: str
    lang: str
    payload: dict[str, Any]
    authorization: str | None
    fault: str | None
    start: float
    wall: float
    end: float = math.nan
    retry_after: str | None = None  # the Retry-After header answered


@dataclass
class FakeOpenAI:
    """The server; see the module docstring. ``start()``/``stop()`` or ``with FakeOpenAI() as fake``."""

    latency_s: float = 0.0
    table: dict[tuple[str, str], str] = field(default_factory=dict)
    script: dict[str, list[str]] = field(default_factory=dict)
    always: dict[str, str] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------------------ lifecycle

    def start(self) -> FakeOpenAI:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._server is not None, "start() the server first"
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    # ------------------------------------------------------------------------------ records

    def reset(self) -> None:
        """Forget the requests seen and the faults configured."""
        with self._lock:
            self.seen.clear()
            self.script.clear()
            self.always.clear()
            self.max_in_flight = 0

    def texts(self) -> list[str]:
        """Source texts of the requests seen, in arrival order (repeats included)."""
        with self._lock:
            return [s.text for s in sorted(self.seen, key=lambda s: s.start)]

    def requests_for(self, text: str) -> list[Seen]:
        with self._lock:
            return sorted((s for s in self.seen if s.text == text), key=lambda s: s.start)

    # ------------------------------------------------------------------------------ serving

    def _fault_for(self, text: str) -> str | None:
        with self._lock:
            if text in self.always:
                return self.always[text]
            queue = self.script.get(text)
            return queue.pop(0) if queue else None

    def _serve(self, h: _Handler) -> None:
        raw = h.rfile.read(int(h.headers.get("Content-Length") or 0))
        try:
            payload = json.loads(raw)
        except ValueError:
            payload = {}
        chat = h.path.rstrip("/").endswith("/chat/completions")
        if chat:
            messages = payload.get("messages") or [{}]
            prompt = str(messages[-1].get("content", ""))
        else:
            prompt = str(payload.get("prompt", ""))
        text, lang = source_of(prompt)
        fault = self._fault_for(text)
        seen = Seen(h.path, text, lang, payload, h.headers.get("Authorization"), fault, time.monotonic(), time.time())
        with self._lock:
            self.seen.append(seen)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.latency_s:
                time.sleep(self.latency_s)
            self._answer(h, seen, chat, payload)
        except OSError:  # the client gave up (timeout) and closed the connection
            h.close_connection = True
        finally:
            with self._lock:
                self.in_flight -= 1
                seen.end = time.monotonic()

    def _answer(self, h: _Handler, seen: Seen, chat: bool, payload: dict[str, Any]) -> None:
        text, lang, fault = seen.text, seen.lang, seen.fault
        if not (h.path.endswith("/chat/completions") or h.path.endswith("/completions")):
            return _send(h, 404, {"error": {"message": f"no route {h.path}", "type": "not_found"}})
        if not payload.get("model"):
            return _send(h, 400, {"error": {"message": "model is required", "type": "invalid_request_error"}})
        kind, _, arg = (fault or "").partition(":")
        if kind == "drop":
            h.close_connection = True
            return None
        if kind == "slow":
            self._stopping.wait(float(arg))
        elif kind in ("429", "503") and arg:
            if arg.startswith("date:"):
                when = math.ceil(time.time() + float(arg[5:]))
                header = email.utils.formatdate(when, usegmt=True)
            else:
                header = arg
            seen.retry_after = header
            return _send(h, int(kind), {"error": {"message": "slow down", "type": "rate_limit"}}, {"Retry-After": header})
        elif kind.isdigit():
            message = f"invalid API key {h.headers.get('Authorization')}" if kind == "401" else f"fault {kind}"
            return _send(h, int(kind), {"error": {"message": message, "type": "fault"}})
        elif kind == "malformed":
            return _send_raw(h, 200, b'{"id": "cmpl-x", "choices": [{"message": ')
        elif kind == "nochoices":
            return _send(h, 200, {"id": "cmpl-x", "object": "chat.completion", "choices": []})
        out = self.table.get((text, lang)) or fake_translation(text, lang)
        if kind == "empty":
            out = ""
        elif kind == "chatty":
            out = f'Translation: "{out}"\n'
        choice: dict[str, Any] = {"index": 0, "finish_reason": "length" if kind == "length" else "stop"}
        if chat:
            choice["message"] = {"role": "assistant", "content": out}
        else:
            choice["text"] = out
        n_in, n_out = len(text.split()) + 20, len(out.split())
        body = {
            "id": f"{'chatcmpl' if chat else 'cmpl'}-{len(self.seen)}",
            "object": "chat.completion" if chat else "text_completion",
            "created": int(time.time()),
            "model": payload["model"],
            "choices": [choice],
            "usage": {"prompt_tokens": n_in, "completion_tokens": n_out, "total_tokens": n_in + n_out},
        }
        return _send(h, 200, body)


def _send(h: _Handler, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
    _send_raw(h, status, json.dumps(body, ensure_ascii=False).encode("utf-8"), headers)


def _send_raw(h: _Handler, status: int, data: bytes, headers: dict[str, str] | None = None) -> None:
    h.send_response(status)
    h.send_header("Content-Type", "application/json")
    h.send_header("Content-Length", str(len(data)))
    for k, v in (headers or {}).items():
        h.send_header(k, v)
    h.end_headers()
    h.wfile.write(data)
    h.wfile.flush()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 512  # the default 5 drops SYNs when 64 clients connect at once
    fake: FakeOpenAI

    def handle_error(self, request: Any, client_address: Any) -> None:  # clients that timed out: expected
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real servers
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall
    server: _Server

    def do_POST(self) -> None:
        self.server.fake._serve(self)

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    """A started :class:`FakeOpenAI`, stopped after the test."""
    with FakeOpenAI() as fake:
        yield fake
