"""Flows declared wrongly fail loudly at import or app start, naming what to change.

Each case runs in a fresh interpreter: a ``@step`` is a Celery shared task, which every
app created later in the same process would take on."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

FACTORY = """
from flowqueue import step

def make(event):
    @step(flow="factory", entry=True, name=event{task_name})
    def handle(ctx, input):
        ctx.emit(event, input)
    return handle

first = make("a.done")
second = make("b.done")
"""


def python(project: Path, modules: dict[str, str], code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a new interpreter with ``modules`` importable from ``project``."""
    for name, source in modules.items():
        (project / f"{name}.py").write_text(textwrap.dedent(source))
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_steps_made_by_a_factory_collide_at_import_naming_both(tmp_path: Path):
    done = python(tmp_path, {"fq_factory": FACTORY.format(task_name="")}, "import fq_factory")
    assert done.returncode == 1
    error = done.stderr.strip().splitlines()[-1]
    assert error.startswith("flowqueue.errors.FlowDefinitionError: two steps share the Celery")
    assert "'fq_factory.handle'" in error
    assert "fq_factory.make.<locals>.handle (step 'a.done')" in error
    assert "fq_factory.make.<locals>.handle (step 'b.done')" in error
    assert "task_name=" in error


def test_two_modules_claiming_one_task_name_collide(tmp_path: Path):
    one = "from flowqueue import step\n\n@step(flow='x', entry=True, task_name='shared.name')\n"
    done = python(
        tmp_path,
        {
            "fq_one": one + "def one(ctx, input):\n    return 1\n",
            "fq_two": one.replace("'x'", "'y'") + "def two(ctx, input):\n    return 2\n",
        },
        "import fq_one, fq_two",
    )
    assert "two steps share the Celery task name 'shared.name': fq_one.one and fq_two.two" in (
        done.stderr
    )


def test_task_name_tells_factory_steps_apart_and_both_run(tmp_path: Path):
    source = FACTORY.format(task_name=", task_name=f'fq_named.{event}'")
    done = python(
        tmp_path,
        {"fq_named": source},
        """
        from flowqueue import create_app, get_run, start_flow
        from flowqueue.settings import Settings
        app = create_app(Settings(redis_url="memory://", workers="fq_named"))
        app.conf.task_always_eager = True
        flow = app.flowqueue.flows.flow("factory")
        print(sorted(flow.steps), [s.task_name for s in flow.steps.values()])
        run = start_flow("factory", {"n": 1}, app=app)
        print(get_run(run, app=app).status)
        app.flowqueue.close()
    """,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == [
        "['a.done', 'b.done'] ['fq_named.a.done', 'fq_named.b.done']",
        "completed",
    ]


def test_reloading_a_module_declares_the_same_steps_again(tmp_path: Path):
    source = (
        "from flowqueue import step\n\n@step(flow='r', entry=True)\ndef one(ctx, i):\n    pass\n"
    )
    done = python(
        tmp_path,
        {"fq_reload": source},
        """
        import importlib, fq_reload
        importlib.reload(fq_reload)  # new function objects, same place: the same step
        print("reloaded")
    """,
    )
    assert (done.returncode, done.stdout) == (0, "reloaded\n"), done.stderr


def test_the_same_step_name_twice_in_one_flow_is_refused(tmp_path: Path):
    done = python(
        tmp_path,
        {
            "fq_twice": """
        from flowqueue import step

        @step(flow="twice", entry=True, name="go")
        def go_a(ctx, input):
            return 1

        @step(flow="twice", name="go", subscribes="x")
        def go_b(ctx, inputs):
            return 2
    """
        },
        """
        from flowqueue import create_app
        from flowqueue.settings import Settings
        create_app(Settings(redis_url="memory://", workers="fq_twice")).flowqueue.flows
    """,
    )
    tasks = "'fq_twice.go_a' and 'fq_twice.go_b'", "'fq_twice.go_b' and 'fq_twice.go_a'"
    assert any(f"flow 'twice' has two steps named 'go' (tasks {t})" in done.stderr for t in tasks)
    assert "pass name=... to @step" in done.stderr


def test_a_flow_without_an_entry_step_is_refused(tmp_path: Path):
    done = python(
        tmp_path,
        {
            "fq_noentry": """
        from flowqueue import step

        @step(flow="noentry", subscribes="x")
        def waits(ctx, inputs):
            return 1
    """
        },
        """
        from flowqueue import create_app
        from flowqueue.settings import Settings
        create_app(Settings(redis_url="memory://", workers="fq_noentry")).flowqueue.flows
    """,
    )
    assert "flow 'noentry' has no entry step; mark the first step with entry=True" in done.stderr
