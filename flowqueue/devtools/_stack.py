"""The processes ``flowqueue dev`` runs: Redis, the worker, the API, Flower; started
together, restarted on a reload, stopped together."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import socket
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import redis

from flowqueue.backend.redis.embedded import EmbeddedRedis, free_port
from flowqueue.devtools._processes import Child, stop_all
from flowqueue.errors import EmbeddedRedisError
from flowqueue.settings import MEMORY_URL, Settings, redact_url, redis_url_problem

DEFAULT_WORKERS: str = Settings.model_fields["workers"].default
READY_TIMEOUT = 60.0  # seconds for a child to come up (a first worker start imports a lot)
RELOAD_GRACE = 5.0  # seconds a reloaded worker has to finish its steps; then KILL


class DevError(Exception):
    """``flowqueue dev`` could not start: one line saying why."""


@dataclass(frozen=True)
class DevOptions:
    port: int = 8000  # 0: any free port
    flower_port: int = 5555  # 0: any free port
    redis_url: str | None = None  # None: FLOWQUEUE_REDIS_URL, else an embedded server
    exit_after: float | None = None  # seconds after everything is up
    examples: bool = True
    app_path: str | None = None  # -A module:attribute, as the flowqueue command takes it


class Stack:
    """Redis and the children of one ``flowqueue dev``, all on 127.0.0.1."""

    def __init__(self, options: DevOptions) -> None:
        self.options = options
        self.logs = Path()  # a new temporary folder, once there is something to log
        self.workers = os.environ.get("FLOWQUEUE_WORKERS") or DEFAULT_WORKERS
        self.redis_url = ""
        self.api_url = ""
        self.flower_url = ""
        self.children: list[Child] = []
        self._embedded: EmbeddedRedis | None = None
        self._ready: dict[str, Callable[[], bool]] = {}

    # -- start ----------------------------------------------------------------------------

    def start(self, stop: threading.Event) -> None:
        """Start everything and wait until it is ready (or ``stop`` is set)."""
        port = _port(self.options.port, "--port")
        flower = importlib.util.find_spec("flower") is not None
        flower_port = _port(self.options.flower_port, "--flower-port") if flower else 0
        if importlib.util.find_spec("uvicorn") is None:
            raise DevError("the API needs its extra: pip install 'flowqueue[api]'")
        self._start_redis()
        self.logs = Path(tempfile.mkdtemp(prefix="flowqueue-dev-"))  # kept: read them after
        env = {**os.environ, "FLOWQUEUE_REDIS_URL": self.redis_url, "PYTHONUNBUFFERED": "1"}
        self.api_url = f"http://127.0.0.1:{port}"
        if flower:
            self.flower_url = env["FLOWQUEUE_FLOWER_URL"] = f"http://127.0.0.1:{flower_port}"
        celery = [_script("celery"), "-A", self.options.app_path or "flowqueue"]
        # Two pool processes run parallel steps side by side and start (and stop) quickly.
        worker = [*celery, "worker", "-l", "INFO", "-n", "dev@%h", "-c", "2"]
        worker += ["--without-mingle", "--without-gossip"]  # one worker: nothing to sync
        app = ["-A", self.options.app_path] if self.options.app_path else []
        api = [_script("flowqueue"), *app, "api", "--host", "127.0.0.1", "--port", str(port)]
        self._add("worker", worker, env, lambda child: " ready." in child.output())
        self._add("api", api, env, lambda _: answers_http(f"{self.api_url}/healthz"))
        if flower:
            command = [*celery, "flower", f"--port={flower_port}", "--address=127.0.0.1"]
            self._add("flower", command, env, lambda _: accepts(flower_port))
        else:
            print("  flower   not installed; pip install 'flowqueue[monitor]' adds it", flush=True)
        for child in self.children:
            child.start()
        for child in self.children:
            problem = self._wait(child, stop)
            if problem is not None:
                _print_log(child, f"{child.name} did not start")
                raise DevError(f"{problem}; its log's end is above")
        print(f"  logs     {self.logs}/", flush=True)

    def _start_redis(self) -> None:
        url = self.options.redis_url or os.environ.get("FLOWQUEUE_REDIS_URL")
        if not url:
            try:
                self._embedded = EmbeddedRedis().start()
            except EmbeddedRedisError as exc:
                raise DevError(str(exc)) from None
            self.redis_url = self._embedded.url
            print(f"  redis    {self.redis_url} (embedded {self._embedded.binary})", flush=True)
            # The whole stack is this throwaway server, the broker too.
            os.environ.pop("CELERY_BROKER_URL", None)
            return
        source = "--redis-url" if self.options.redis_url else "FLOWQUEUE_REDIS_URL"
        problem = redis_url_problem(url)
        if problem is None and url == MEMORY_URL:
            problem = "memory:// is one process's own Redis; dev's processes need a shared one"
        if problem is not None:
            raise DevError(f"{source} {redact_url(url)!r}: {problem}")
        try:
            with redis.Redis.from_url(url, socket_connect_timeout=2) as client:
                client.ping()
        except redis.RedisError as exc:
            raise DevError(
                f"Redis at {redact_url(url)} does not answer ({exc}); start it, or leave out "
                f"{source} for an embedded redis-server"
            ) from None
        self.redis_url = url
        print(f"  redis    {redact_url(url)}", flush=True)

    def _add(
        self, name: str, command: list[str], env: dict[str, str], ready: Callable[[Child], bool]
    ) -> None:
        child = Child(name, command, env, self.logs / f"{name}.log")
        self._ready[name] = lambda: ready(child)
        self.children.append(child)

    def _wait(self, child: Child, stop: threading.Event) -> str | None:
        """None once ``child`` is ready (or ``stop`` is set), else why not."""
        deadline = time.monotonic() + READY_TIMEOUT
        while not stop.is_set() and not self._ready[child.name]():
            code = child.exit_code()
            if code is not None or time.monotonic() > deadline:
                child.expected_exit = True  # reported by the caller, once
                if code is None:
                    return f"{child.name} is not ready after {READY_TIMEOUT:g} s"
                return f"{child.name} exited at start (code {code})"
            time.sleep(0.1)
        if not stop.is_set():
            print(f"  {child.name:<8} ready, pid {child.pid}", flush=True)
        return None

    # -- while running -------------------------------------------------------------------

    def reload(self, stop: threading.Event) -> None:
        """Restart the worker and the API (the API serves flow definitions too)."""
        restarted = [c for c in self.children if c.name in ("worker", "api")]
        left = stop_all(restarted, RELOAD_GRACE)
        if left:
            print(f"!! {', '.join(left)} still running after KILL", file=sys.stderr, flush=True)
        if stop.is_set():
            return
        for child in restarted:
            child.start()
        for child in restarted:
            problem = self._wait(child, stop)
            if problem is not None:
                _print_log(child, f"{problem}; it starts again at the next change")

    def report_exits(self) -> None:
        """Say once, with its log's tail, that a child ended without being asked to."""
        for child in self.children:
            code = child.exit_code()
            if code is None or child.expected_exit:
                continue
            child.expected_exit = True
            again = "" if child.name == "flower" else "; it starts again at the next change"
            _print_log(child, f"{child.name} exited (code {code}){again}")

    # -- stop ------------------------------------------------------------------------------

    @property
    def started(self) -> bool:
        return self._embedded is not None or any(c.process is not None for c in self.children)

    def stop(self, grace: float) -> list[str]:
        """Stop every child, then Redis; what is still running afterwards."""
        left = stop_all(self.children, grace)
        if self._embedded is not None:
            self._embedded.stop()
        return left


def _port(port: int, option: str) -> int:
    if port == 0:
        return free_port()
    if not port_free(port):
        raise DevError(f"port {port} is taken; pass {option} with a free port (0: any)")
    return port


def _script(name: str) -> str:
    """A console script of this environment (as the README runs it), not one from PATH."""
    script = Path(sys.executable).with_name(name)
    if not script.is_file():
        raise DevError(f"no {name} script beside {sys.executable}; is flowqueue installed here?")
    return str(script)


def _print_log(child: Child, headline: str) -> None:
    """``headline``, then the end of what ``child`` printed, on stderr."""
    tail = "\n".join("    " + line for line in child.tail().splitlines()) or "    (nothing)"
    print(f"{headline}; its log ({child.log_path}) ends:\n{tail}", file=sys.stderr, flush=True)


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def answers_http(url: str) -> bool:
    """Whether an HTTP server answers ``url`` at all (503 too: Redis may answer later)."""
    try:
        with urllib.request.urlopen(url, timeout=1):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def accepts(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
        return True
    return False
