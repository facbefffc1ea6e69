"""The README's own commands, as a newcomer runs them: the ``celery`` console script from
the project directory, nothing on PYTHONPATH, then ``flowqueue start example-flow --wait``.
(``python -m celery`` puts the working directory on sys.path; the console script does
not, and a worker started that way once served no flows while every test passed.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from flowqueue.backend.redis.embedded import EmbeddedRedis
from flowqueue.devtools.worker import WorkerProcess

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def user_env() -> dict[str, str]:
    """This environment as a newcomer's shell has it: no PYTHONPATH, no flowqueue settings."""
    return {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "VIRTUAL_ENV") and not k.startswith(("FLOWQUEUE_", "CELERY_"))
    }


def readme_commands(project: Path, bin_dir: Path, log_dir: Path) -> subprocess.CompletedProcess:
    """A Redis, `bin/celery -A flowqueue worker`, then `bin/flowqueue start example-flow
    --wait`, from ``project``; the start command's result."""
    env = user_env()
    with EmbeddedRedis() as redis_server:
        env["FLOWQUEUE_REDIS_URL"] = redis_server.url
        worker = WorkerProcess(
            env, log_dir / "worker.log", ["-c", "1"], cwd=project, celery=bin_dir / "celery"
        )
        with worker:
            assert "workers.example_flow.first_step" in worker.log()  # its [tasks] list
            return subprocess.run(
                [str(bin_dir / "flowqueue"), "start", "example-flow", "--wait"],
                cwd=project,
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )


def test_the_readme_worker_command_serves_the_example_flows(tmp_path):
    run = readme_commands(ROOT, BIN, tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "flow.completed" in run.stdout


def test_the_projects_celeryconfig_is_read_from_the_working_directory(tmp_path):
    """``python -I`` keeps the working directory off sys.path, as the console script does."""
    (tmp_path / "celeryconfig.py").write_text(
        "from flowqueue.runtime.celery_defaults import *  # noqa: F403\n"
        'task_default_queue = "from-the-project"\n'
    )
    code = "import flowqueue; print(flowqueue.app.conf.task_default_queue)"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLOWQUEUE_", "CELERY_"))}
    env["FLOWQUEUE_REDIS_URL"] = "redis://127.0.0.1:1/0"  # never connected to
    shown = subprocess.run(
        [sys.executable, "-I", "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert shown.stdout.strip() == "from-the-project", shown.stderr


@pytest.mark.slow
def test_a_clean_clone_installs_and_runs_the_readme_commands(tmp_path):
    """The issue's acceptance, step by step: clone, `make install`, a Redis, the worker by
    `.venv/bin/celery`, then `.venv/bin/flowqueue start example-flow --wait`."""
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: nothing to clone")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True, timeout=120)
    install = subprocess.run(
        ["make", "install"], cwd=clone, env=user_env(), capture_output=True, text=True, timeout=600
    )
    assert install.returncode == 0, install.stdout[-2000:] + install.stderr[-2000:]
    assert "is deprecated" not in install.stderr, install.stderr  # setuptools' license table
    run = readme_commands(clone, clone / ".venv" / "bin", tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "flow.completed" in run.stdout


def test_a_flow_module_that_fails_to_import_stops_the_worker_at_start(tmp_path):
    """Never a worker that starts and silently serves fewer flows."""
    (tmp_path / "workers").mkdir()
    (tmp_path / "workers" / "__init__.py").write_text("")
    (tmp_path / "workers" / "good.py").write_text(
        "from flowqueue import step\n\n@step(flow='ok', entry=True)\ndef fine(ctx, i):\n    pass\n"
    )
    (tmp_path / "workers" / "broken.py").write_text("import a_module_that_is_not_there\n")
    env = {**user_env(), "FLOWQUEUE_REDIS_URL": "redis://127.0.0.1:1/0"}  # never reached
    worker = subprocess.run(
        [str(BIN / "celery"), "-A", "flowqueue", "worker", "-c", "1"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert worker.returncode != 0
    assert 'File "' + str(tmp_path / "workers" / "broken.py") in worker.stderr
    assert worker.stderr.rstrip().endswith(
        "ModuleNotFoundError: No module named 'a_module_that_is_not_there'"
    )
