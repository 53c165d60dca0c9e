"""infra.rie: AWS's Lambda Runtime Interface Emulator running awslambdaric on the host.

These use throwaway handlers (tests/lambda_echo.py, tests/lambda_broken_init.py) through the Dockerfile's
ENTRYPOINT with the CMD overridden, as ``docker run IMAGE lambda_echo.handler`` would; the real handler's
events come with the engine's tests.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from infra import image_spec, invoke_cli, processes, rie

TESTS = Path(__file__).resolve().parent
ECHO = ["lambda_echo.handler"]
BROKEN = ["lambda_broken_init.handler"]

pytestmark = pytest.mark.slow


def run(events, **kwargs):
    kwargs.setdefault("command", ECHO)
    kwargs.setdefault("cwd", TESTS)
    kwargs.setdefault("timeout", 60)
    return rie.invoke(events, **kwargs)


def timed(function, *args, **kwargs):
    """``function(...)`` and the wall-clock span (epoch ms) it ran in: the emulator sets each deadline inside it."""
    before = time.time() * 1000
    result = function(*args, **kwargs)
    return result, (before, time.time() * 1000)


def assert_deadline(deadline_ms, span, timeout_s):
    """The deadline is the function's Timeout counted from the invocation, which the span contains: true
    however long the emulator and the init took (a slow host moves the span, not this relation)."""
    before, after = span
    assert before + timeout_s * 1000 - 1000 <= deadline_ms <= after + timeout_s * 1000 + 1000


def assert_all_stopped(report):
    assert report.stopped
    assert report.pids, "the report names the processes it started"
    assert not [pid for pid in report.pids if processes.pid_alive(pid)]


def test_echo_through_the_real_runtime_client(monkeypatch):
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    env = {"ECHO_MARK": "from-caller", "SEG_CONFIDENCE": "0.25"}
    report, span = timed(run, [{"hello": "world"}], env=env)
    assert report.ok, report.error + "\n" + report.logs
    (body,) = report.responses
    assert body["event"] == {"hello": "world"}
    assert body["cwd"] == str(TESTS)
    # template.yaml's function environment, with the caller's values winning
    assert body["env"]["SEG_INPUT_PREFIX"] == "uploads/"
    assert body["env"]["SEG_OUTPUT_PREFIX"] == "results/"
    assert body["env"]["SEG_CONFIDENCE"] == "0.25"
    assert body["env"]["ECHO_MARK"] == "from-caller"
    assert body["env"]["MALLOC_ARENA_MAX"] == "1"  # the image's ENV: one malloc arena
    # the template's Timeout is the deadline the emulator gives the function
    assert_deadline(body["deadline_ms"], span, image_spec.function_spec().timeout)
    assert 0 < body["remaining_ms"] <= image_spec.function_spec().timeout * 1000
    assert report.command[-1] == "lambda_echo.handler"
    assert report.command[1:3] == ["-m", "awslambdaric"]
    assert report.invocations[0].cold
    assert report.init_ms is not None
    assert body["pid"] in report.pids
    assert_all_stopped(report)


def test_repeat_reuses_one_warm_runtime():
    report = run([{"n": 1}, {"n": 2}], repeat=3)
    assert report.ok, report.error
    assert [body["event"]["n"] for body in report.responses] == [1, 2, 1, 2, 1, 2]
    assert [inv.cold for inv in report.invocations] == [True] + [False] * 5
    assert len({body["pid"] for body in report.responses}) == 1
    assert len({body["request_id"] for body in report.responses}) == 6
    timings = report.timings()
    assert timings["cold_s"] > 0
    assert timings["warm_s"]["n"] == 5
    assert_all_stopped(report)


def test_handler_error_is_a_200_with_error_type_and_the_runtime_stays_warm():
    report = run([{"raise": "boom"}, {"after": "error"}])
    assert not report.ok
    failed, after = report.invocations
    assert failed.status == 200  # the emulator answers 200: only the body tells
    assert failed.body["errorType"] == "ValueError"
    assert failed.error == "ValueError: boom"
    assert report.error == "invocation 0 failed: ValueError: boom"
    assert report.init_error is None
    assert after.ok and after.body["event"] == {"after": "error"}
    assert not after.cold
    assert_all_stopped(report)


def test_init_failure_is_reported_with_its_message():
    report = run([{"x": 1}], repeat=3, command=BROKEN, env={"SEG_MODEL_PATH": "/nonexistent/model.pkl"})
    assert not report.ok
    assert len(report.invocations) == 1, "an init failure stops the run"
    assert report.invocations[0].status == 502
    assert report.init_error.startswith("FileNotFoundError: ")
    assert "SEG_MODEL_PATH=/nonexistent/model.pkl" in report.init_error
    assert report.error.startswith("init failed: FileNotFoundError")
    assert "INIT RTDONE(status: error)" in report.logs
    assert_all_stopped(report)


def test_time_budget_stops_everything():
    # The function's own timeout is longer than its sleep: only the run's budget can end it before the sleep.
    started = time.monotonic()
    report = run([{"sleep": 60}], timeout=3, stop_grace=2, env={"AWS_LAMBDA_FUNCTION_TIMEOUT": "120"})
    assert time.monotonic() - started < 60
    assert not report.ok
    assert report.invocations[0].error.startswith("Timeout")
    assert_all_stopped(report)


def test_function_timeout_is_an_error_and_the_next_event_gets_a_fresh_runtime():
    # The emulator answers a timeout with HTTP 200 and the bare string "Task timed out after ...".
    report = run([{"sleep": 5}, {"after": "timeout"}], env={"AWS_LAMBDA_FUNCTION_TIMEOUT": "1"})
    assert not report.ok
    timed_out, after = report.invocations
    assert timed_out.status == 200
    assert timed_out.error == "Sandbox.Timedout: Task timed out after 1.00 seconds"
    assert report.error == f"invocation 0 failed: {timed_out.error}"
    assert after.ok and after.body["event"] == {"after": "timeout"}
    assert after.cold, "the emulator killed the timed-out runtime and started another"
    assert_all_stopped(report)


def test_missing_handler_module_is_an_init_failure():
    report = run([{}], command=["no_such_module.handler"])
    assert report.init_error is not None
    assert "Runtime.ImportModuleError" in report.init_error
    assert "no_such_module" in report.init_error
    assert_all_stopped(report)


# --- parsing (no processes) ------------------------------------------------------------------------


def test_dockerfile_exec_form_takes_the_final_stage(tmp_path):
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(
        'FROM a AS builder\nENTRYPOINT ["builder"]\nCMD ["x"]\n'
        'FROM b\n# comment\nENTRYPOINT ["python", \\\n  "-m", "awslambdaric"]\n'
        'CMD ["pkg.mod.fn"]\n'
    )
    assert image_spec.dockerfile_exec_form(dockerfile) == (["python", "-m", "awslambdaric"], ["pkg.mod.fn"])
    assert image_spec.runtime_command(dockerfile, template=None, python="/py") == [
        "/py",
        "-m",
        "awslambdaric",
        "pkg.mod.fn",
    ]
    assert image_spec.runtime_command(dockerfile, template=None, command=["other.fn"], python="/py")[-1] == "other.fn"


def test_dockerfile_shell_form_is_refused(tmp_path):
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM b\nENTRYPOINT python -m awslambdaric\n")
    with pytest.raises(ValueError, match="exec form"):
        image_spec.dockerfile_exec_form(dockerfile)


def test_template_values_resolve_like_sam_local():
    names = {"AWS::StackName": "local", "AWS::AccountId": "123456789012", "P": "v"}
    assert image_spec._resolve({"Ref": "P"}, names) == "v"
    assert image_spec._resolve({"Fn::Sub": "${AWS::StackName}-${P}-${!Literal}"}, names) == "local-v-${Literal}"
    assert image_spec._resolve({"Fn::Sub": ["${X}/y", {"X": {"Ref": "P"}}]}, names) == "v/y"
    with pytest.raises(image_spec._Unresolved):
        image_spec._resolve({"Fn::GetAtt": ["Queue", "Arn"]}, names)
    spec = image_spec.function_spec(parameters={"Confidence": "0.7"})
    assert spec.environment["SEG_CONFIDENCE"] == "0.7"
    assert spec.environment["SEG_ALLOWED_BUCKETS"] == "local-123456789012-uploads/uploads/"
    assert spec.environment["SEG_ALLOW_S3_URI"] == "false"
    assert image_spec.function_spec(parameters={"ApiAuth": "JWT"}).environment["SEG_ALLOW_S3_URI"] == "true"


def test_rie_binary_for_this_machine():
    path = processes.find_rie()
    assert path.name == f"aws-lambda-rie-{processes.rie_arch()}"
    assert path.stat().st_mode & 0o111
    assert processes.rie_arch("aarch64") == "arm64" and processes.rie_arch("AMD64") == "x86_64"
    with pytest.raises(processes.InvokeError):
        processes.rie_arch("s390x")


def test_free_ports_are_distinct():
    first, second = processes.free_ports(2)
    assert first != second


def test_invoke_cli_prints_the_response_and_exits_by_outcome(tmp_path):
    import io
    import json

    good, bad, broken = tmp_path / "good.json", tmp_path / "bad.json", tmp_path / "broken.json"
    good.write_text(json.dumps({"hello": 1}))
    bad.write_text(json.dumps({"raise": "nope"}))
    broken.write_text("{not json")
    out, err = io.StringIO(), io.StringIO()
    assert invoke_cli.invoke_cli(good, repeat=2, stdout=out, stderr=err, command=ECHO, cwd=TESTS, timeout=60) == 0
    assert json.loads(out.getvalue())["event"] == {"hello": 1}
    assert "cold" in err.getvalue() and "warm median" in err.getvalue()
    out, err = io.StringIO(), io.StringIO()
    assert invoke_cli.invoke_cli(bad, stdout=out, stderr=err, command=ECHO, cwd=TESTS, timeout=60) == 1
    assert "ValueError: nope" in err.getvalue()
    assert json.loads(out.getvalue())["errorType"] == "ValueError"
    assert invoke_cli.invoke_cli(broken, stdout=io.StringIO(), stderr=io.StringIO()) == 2


def test_invoke_cli_runs_each_event_as_the_function_that_gets_it(tmp_path):
    import io
    import json

    from conftest import EVENTS

    for name in ("apigw-http-healthz.json", "s3-batch-v1.json"):
        out, err = io.StringIO(), io.StringIO()
        options = {"stdout": out, "stderr": err, "command": ECHO, "cwd": TESTS, "timeout": 60}
        code, span = timed(invoke_cli.invoke_cli, EVENTS / name, **options)
        assert code == 0
        function_id = image_spec.FUNCTION_ID if name.startswith("apigw") else image_spec.WORKER_ID
        assert err.getvalue().startswith(f"invoke ({function_id}): cold ")
        # each function's own Timeout (the worker's WorkerTimeout is the longer one)
        timeout_s = image_spec.function_spec(function_id=function_id).timeout
        assert_deadline(json.loads(out.getvalue())["deadline_ms"], span, timeout_s)
    functions = (image_spec.FUNCTION_ID, image_spec.WORKER_ID)
    http, worker = (image_spec.function_spec(function_id=function_id).timeout for function_id in functions)
    assert worker > http
