"""``python -m handler backfill``: the listing and the estimate against moto server, the Batch Operations job
through botocore's Stubber (moto has no S3 Batch Operations jobs), and each error a user can meet."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from handler.cli import main
from handler.cli.backfill import Clients, run
from handler.cli.estimate import Estimate

ACCOUNT = "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/pointrend-lambda-BatchOperationsRole-ABC"
WORKER = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:pointrend-lambda-WorkerFunction-XYZ"
JOB_ID = "8d2b9e1c-5f3a-4c7e-9b1d-0a6e4f2c8b13"


def stack_answer(bucket: str, **parameters: str) -> dict[str, Any]:
    """describe_stacks of a deployed stack whose bucket is ``bucket``."""
    values = {"InputPrefix": "uploads/", "OutputPrefix": "results/", "WorkerMemorySize": "3008", **parameters}
    outputs = {"WorkerFunctionArn": WORKER, "BatchOperationsRoleArn": ROLE, "InputBucketName": bucket}
    return {
        "Stacks": [
            {
                "StackName": "pointrend-lambda",
                "CreationTime": "2026-11-28T04:00:00Z",
                "StackStatus": "CREATE_COMPLETE",
                "Outputs": [{"OutputKey": k, "OutputValue": v} for k, v in outputs.items()],
                "Parameters": [{"ParameterKey": k, "ParameterValue": v} for k, v in values.items()],
            }
        ]
    }


@pytest.fixture
def clients(s3: Any) -> Any:
    """moto's S3 for listing; stubbed CloudFormation and S3 Control, checked to be used up."""
    stubbed = Clients(
        s3=s3,
        s3control=boto3.client("s3control", region_name="us-east-1"),
        cloudformation=boto3.client("cloudformation", region_name="us-east-1"),
    )
    with Stubber(stubbed.s3control) as control, Stubber(stubbed.cloudformation) as stacks:
        stubbed.control, stubbed.stacks = control, stacks
        yield stubbed
        control.assert_no_pending_responses()
        stacks.assert_no_pending_responses()


def args(*argv: str) -> Any:
    from handler.cli import build_parser

    return build_parser().parse_args(["backfill", *argv, "--poll-seconds", "0"])


def job_request(bucket: str, prefix: str, arguments: dict[str, str]) -> dict[str, Any]:
    """The create_job request, exactly."""
    return {
        "AccountId": ACCOUNT,
        "ConfirmationRequired": False,
        "Operation": {
            "LambdaInvoke": {"FunctionArn": WORKER, "InvocationSchemaVersion": "2.0", "UserArguments": arguments}
        },
        "Report": {
            "Bucket": f"arn:aws:s3:::{bucket}",
            "Prefix": "results/batch-operations",
            "Format": "Report_CSV_20180820",
            "Enabled": True,
            "ReportScope": "AllTasks",
        },
        "ClientRequestToken": ANY,
        "ManifestGenerator": {
            "S3JobManifestGenerator": {
                "SourceBucket": f"arn:aws:s3:::{bucket}",
                "EnableManifestOutput": True,
                "ManifestOutputLocation": {
                    "Bucket": f"arn:aws:s3:::{bucket}",
                    "ManifestPrefix": "results/batch-operations/manifests",
                    "ManifestFormat": "S3InventoryReport_CSV_20211130",
                },
                "Filter": {"KeyNameConstraint": {"MatchAnyPrefix": [prefix]}},
            }
        },
        "Priority": 10,
        "RoleArn": ROLE,
        "Description": f"pointrend backfill s3://{bucket}/{prefix}",
    }


def job_state(status: str, succeeded: int, failed: int, total: int, **extra: Any) -> dict[str, Any]:
    progress = {"TotalNumberOfTasks": total, "NumberOfTasksSucceeded": succeeded, "NumberOfTasksFailed": failed}
    return {"Job": {"JobId": JOB_ID, "Status": status, "ProgressSummary": progress, **extra}}


# --- dry run ------------------------------------------------------------------------------------------


def test_dry_run_counts_the_prefix_through_every_page_and_prints_the_estimate(s3, bucket, capsys):
    for n in range(1005):  # more than one page of list_objects_v2
        s3.put_object(Bucket=bucket, Key=f"uploads/{n:04}.jpg", Body=b"x" * (n % 7))
    s3.put_object(Bucket=bucket, Key="elsewhere/not-counted.jpg", Body=b"y" * 100)
    code = main(["backfill", f"s3://{bucket}/uploads/", "--dry-run", "--stack", "no-such-stack"])
    out = capsys.readouterr().out.splitlines()
    total = sum(n % 7 for n in range(1005))
    assert code == 0
    assert out[0] == f"s3://{bucket}/uploads/: 1,005 objects, 3.01 kB ({total:,} bytes)"
    assert out[1:] == Estimate(objects=1005, total_bytes=total).lines([100, 1000])


@pytest.fixture
def data_file(tmp_path, monkeypatch):
    """handler.core.measured reading a data file of this test's own (the benches' format)."""
    from handler.core import measured

    monkeypatch.setattr(measured, "MEASURED_FILE", tmp_path / "measured.json")
    measured._all.cache_clear()
    yield measured
    measured._all.cache_clear()


def write_engine_and_init(data_file, seconds_per_image: float, worker_init: float) -> None:
    provenance = {"machine": "a test", "isa": "none", "date": "2026-01-02"}
    data_file.write_section("engine", {"seconds_per_image": seconds_per_image}, source="bench/engine.py", **provenance)
    data_file.write_section("init", {"worker_seconds": worker_init}, source="bench/init.py", **provenance)


def test_the_estimate_for_a_million_images(data_file):
    write_engine_and_init(data_file, seconds_per_image=2.90, worker_init=6.7)
    estimate = Estimate(objects=1_000_000, total_bytes=2_000_000_000_000)
    assert estimate.lines([100, 1000]) == [
        "per image: 2.90 s at 3008 MB = 8.52 GB-s (bench/engine.py on 2026-01-02, handler/core/measured.json 'engine')",
        "Lambda time: 2,900,000 s (805.6 h), 8,518,750 GB-s",
        "cost (us-east-1 list prices, x86_64): Lambda compute $141.98, Lambda requests $0.20, S3 requests $10.80, "
        "Batch Operations $1.25; total $154.23",
        "wall-clock at concurrency 100: 8.1 h",
        "wall-clock at concurrency 1,000: 48 min",
    ]


def test_the_estimate_reads_the_memory_sizes_rows_at_the_workers_memory(data_file):
    write_engine_and_init(data_file, seconds_per_image=2.90, worker_init=6.7)
    rows = [  # as bench/memory_sizes.py writes them
        {"memory_mb": 1769, "p50_s": {"1333x800": 4.0, "12mp": 20.0}, "init_s": 6.0},
        {"memory_mb": 3538, "p50_s": {"1333x800": 2.0, "12mp": 10.0}, "init_s": 3.0},
    ]
    provenance = {"machine": "a test", "isa": "none", "date": "2026-01-02"}
    data_file.write_section("memory_sizes", {"rows": rows}, source="bench/memory_sizes.py", **provenance)
    assert Estimate(objects=1, total_bytes=1, memory_mb=3538).seconds_per_image == 2.0
    # between two rows: the images per second in proportion to the memory (1/4 at 1769 MB, 1/2 at 3538 MB)
    halfway = Estimate(objects=1, total_bytes=1, memory_mb=(1769 + 3538) // 2).seconds_per_image
    assert halfway == pytest.approx(1 / (0.25 + 0.25 * ((1769 + 3538) // 2 - 1769) / 1769))
    assert Estimate(objects=1, total_bytes=1, memory_mb=1024).seconds_per_image == 4.0  # below the rows: the least
    assert Estimate(objects=1, total_bytes=1, memory_mb=10240).seconds_per_image == 2.0  # above: the most measured
    assert Estimate(objects=1, total_bytes=1, memory_mb=3538).wall_clock_seconds(1) == 3.0 + 2.0  # the row's init
    assert "'memory_sizes'" in Estimate(objects=1, total_bytes=1, memory_mb=3008).lines([1])[0]
    assert Estimate(objects=1, total_bytes=1, seconds_per_image=1.5).lines([1])[0].endswith("(given)")


def test_the_estimate_prices_with_the_figures_of_the_data_file():
    """The shipped data file: whatever the benches last wrote is what a dry run prices with."""
    from handler.core.measured import MissingMeasurement, measured

    try:
        rows = measured("memory_sizes")
    except MissingMeasurement:
        rows = {}
    estimate = Estimate(objects=1000, total_bytes=1)
    if "'engine'" in estimate.source:
        assert estimate.seconds_per_image == measured("engine")["seconds_per_image"]
    else:
        assert rows and "'memory_sizes'" in estimate.source
    if not rows:
        init = measured("init")["worker_seconds"]
        assert estimate.wall_clock_seconds(1000) == pytest.approx(init + estimate.seconds_per_image)


def test_dry_run_uses_the_stacks_memory_and_says_when_concurrency_is_capped(clients, bucket, capsys):
    clients.s3.put_object(Bucket=bucket, Key="uploads/a.jpg", Body=b"1234")
    answer = stack_answer(bucket, WorkerMemorySize="10240", WorkerReservedConcurrency="50", Architecture="arm64")
    clients.stacks.add_response("describe_stacks", answer, {"StackName": "pointrend-lambda"})
    assert run(args(f"s3://{bucket}/uploads/", "--dry-run", "--concurrency", "50"), clients) == 0
    out = capsys.readouterr().out.splitlines()
    expected = Estimate(objects=1, total_bytes=4, memory_mb=10240, architecture="arm64").lines([50])
    assert out[1:] == [*expected, "note: the worker's reserved concurrency (50) caps how many run at once"]


def test_dry_run_of_a_bucket_that_cannot_be_listed_is_a_clear_error(s3, capsys):
    assert main(["backfill", "s3://no-such-bucket-here/x/", "--dry-run", "--stack", "no-such-stack"]) == 1
    assert "error: cannot list s3://no-such-bucket-here/x/ (NoSuchBucket)" in capsys.readouterr().err


# --- the job --------------------------------------------------------------------------------------------


def test_creates_the_job_with_the_stack_outputs_and_waits_for_its_report(clients, bucket, capsys):
    clients.stacks.add_response("describe_stacks", stack_answer(bucket), {"StackName": "pointrend-lambda"})
    arguments = {"masks": "polygons", "confidence": "0.3", "overlay": "false", "cutouts": "box"}
    clients.control.add_response("create_job", {"JobId": JOB_ID}, job_request(bucket, "uploads/2024/", arguments))
    for state in (job_state("Preparing", 0, 0, 0), job_state("Active", 2, 0, 3), job_state("Complete", 3, 0, 3)):
        clients.control.add_response("describe_job", state, {"AccountId": ACCOUNT, "JobId": JOB_ID})
    argv = ("--masks", "polygons", "--confidence", "0.3", "--overlay", "false", "--cutouts", "box", "--wait")
    assert run(args(f"s3://{bucket}/uploads/2024/", *argv), clients) == 0
    report = f"s3://{bucket}/results/batch-operations/job-{JOB_ID}/"
    assert capsys.readouterr().out.splitlines() == [
        f"job {JOB_ID}: segmenting s3://{bucket}/uploads/2024/; report under {report}",
        f"job {JOB_ID} complete: 3 succeeded, 0 failed; report: {report}",
    ]


def test_flags_replace_the_stack_and_failed_tasks_make_the_exit_code_1(clients, bucket, capsys):
    clients.stacks.add_client_error("describe_stacks", "ValidationError", "Stack with id nope does not exist")
    request = job_request(bucket, "photos/", {})
    request["Report"]["Prefix"] = "reports"
    request["ManifestGenerator"]["S3JobManifestGenerator"]["ManifestOutputLocation"]["ManifestPrefix"] = (
        "reports/manifests"
    )
    clients.control.add_response("create_job", {"JobId": JOB_ID}, request)
    clients.control.add_response(
        "describe_job", job_state("Complete", 9, 1, 10), {"AccountId": ACCOUNT, "JobId": JOB_ID}
    )
    flags = ("--role-arn", ROLE, "--function-arn", WORKER, "--report-bucket", bucket, "--report-prefix", "reports")
    assert run(args(f"s3://{bucket}/photos/", "--stack", "nope", *flags, "--wait"), clients) == 1
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"job {JOB_ID} complete: 9 succeeded, 1 failed; report: s3://{bucket}/reports/job-{JOB_ID}/"
    )


def test_a_failed_job_is_an_error_with_its_reasons(clients, bucket, capsys):
    clients.stacks.add_response("describe_stacks", stack_answer(bucket), {"StackName": "pointrend-lambda"})
    clients.control.add_response("create_job", {"JobId": JOB_ID}, job_request(bucket, "uploads/", {}))
    reasons = [{"FailureCode": "AccessDenied", "FailureReason": "Access denied invoking the function"}]
    failed = job_state("Failed", 0, 12, 12, FailureReasons=reasons)
    clients.control.add_response("describe_job", failed, {"AccountId": ACCOUNT, "JobId": JOB_ID})
    assert run(args(f"s3://{bucket}/uploads/", "--wait"), clients) == 1
    err = capsys.readouterr().err
    assert f"error: job {JOB_ID} failed: AccessDenied: Access denied invoking the function" in err


# --- errors before any job is created -------------------------------------------------------------------


def test_without_a_stack_or_a_role_flag_it_says_what_is_missing(clients, bucket, capsys):
    clients.stacks.add_client_error(
        "describe_stacks", "ValidationError", "Stack with id pointrend-lambda does not exist"
    )
    assert run(args(f"s3://{bucket}/uploads/"), clients) == 1
    assert (
        "error: no role for the job (--role-arn): stack outputs have no BatchOperationsRoleArn"
        in capsys.readouterr().err
    )


def test_a_bucket_that_cannot_be_read_fails_before_the_job(clients, capsys):
    clients.stacks.add_response("describe_stacks", stack_answer("gone-bucket"), {"StackName": "pointrend-lambda"})
    assert run(args("s3://gone-bucket/uploads/"), clients) == 1
    assert "error: cannot read s3://gone-bucket/uploads/ (NoSuchBucket)" in capsys.readouterr().err


def test_objects_the_worker_may_not_read_fail_before_the_job(clients, bucket, capsys):
    clients.stacks.add_response("describe_stacks", stack_answer(bucket), {"StackName": "pointrend-lambda"})
    assert run(args("s3://someone-elses-bucket/photos/"), clients) == 1
    err = capsys.readouterr().err
    assert f"error: the worker may read only s3://{bucket}/uploads/: redeploy the stack with " in err
    assert "BackfillBucket=someone-elses-bucket" in err


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--confidence", "2", "--confidence: Input should be less than or equal to 1"),
        ("--masks", "bitmap", "--masks: Input should be 'rle', 'polygons' or 'none'"),
        ("--cutouts", "outline", "--cutouts: Input should be 'mask' or 'box'"),
    ],
)
def test_a_bad_option_fails_before_the_job(clients, bucket, capsys, flag, value, message):
    clients.stacks.add_response("describe_stacks", stack_answer(bucket), {"StackName": "pointrend-lambda"})
    assert run(args(f"s3://{bucket}/uploads/", flag, value), clients) == 1
    assert f"error: invalid options: {message}" in capsys.readouterr().err


def test_s3_refusing_the_job_names_what_it_needs(clients, bucket, capsys):
    clients.stacks.add_response("describe_stacks", stack_answer(bucket), {"StackName": "pointrend-lambda"})
    clients.control.add_client_error("create_job", "AccessDenied", "not authorized to perform iam:PassRole")
    assert run(args(f"s3://{bucket}/uploads/"), clients) == 1
    err = capsys.readouterr().err
    assert "S3 refused the job (AccessDenied: not authorized to perform iam:PassRole)" in err
    assert "iam:PassRole" in err and "batchoperations.s3.amazonaws.com" in err


# --- rerunning only the failures -------------------------------------------------------------------------

OLD_JOB = "11111111-2222-4333-8444-555555555555"


def put_report(s3: Any, bucket: str, failed_rows: str) -> None:
    """A completion report as Batch Operations writes it: manifest.json naming a succeeded and a failed CSV."""
    base = f"results/batch-operations/job-{OLD_JOB}"
    results = [("succeeded", f"{bucket},uploads/ok.jpg,,succeeded,200,,s3://{bucket}/results/ok.jpg.json\n")]
    if failed_rows:
        results.append(("failed", failed_rows))
    entries = []
    for n, (status, text) in enumerate(results):
        key = f"{base}/results/{n}.csv"
        s3.put_object(Bucket=bucket, Key=key, Body=text.encode())
        entries.append({"TaskExecutionStatus": status, "Bucket": bucket, "MD5Checksum": "x", "Key": key})
    manifest = {"Format": "Report_CSV_20180820", "Results": entries}
    s3.put_object(Bucket=bucket, Key=f"{base}/manifest.json", Body=json.dumps(manifest).encode())


def retry_job_request(bucket: str, manifest_key: str, rows: str, fields: list[str]) -> dict:
    """The create_job request of ``--retry-failed``: a CSV manifest of the failed rows, with these fields."""
    request = job_request(bucket, "", {})
    del request["ManifestGenerator"]
    request["Manifest"] = {
        "Spec": {"Format": "S3BatchOperations_CSV_20180820", "Fields": fields},
        "Location": {
            "ObjectArn": f"arn:aws:s3:::{bucket}/{manifest_key}",
            "ETag": hashlib.md5(rows.encode()).hexdigest(),  # noqa: S324 (S3's ETag of a single-part upload)
        },
    }
    request["Description"] = f"pointrend retry of 2 failed tasks of job {OLD_JOB}"
    return request


def assert_retry_makes(clients, bucket: str, failed: str, rows: str, fields: list[str]) -> None:
    """``--retry-failed`` over a report with the ``failed`` rows writes the manifest ``rows`` (with ``fields``)
    and asks for the job over it."""
    put_report(clients.s3, bucket, failed)
    clients.stacks.add_response("describe_stacks", stack_answer(bucket), {"StackName": "pointrend-lambda"})
    manifest_key = f"results/batch-operations/retries/job-{OLD_JOB}.csv"
    clients.control.add_response("create_job", {"JobId": JOB_ID}, retry_job_request(bucket, manifest_key, rows, fields))
    assert run(args("--retry-failed", OLD_JOB), clients) == 0
    assert clients.s3.get_object(Bucket=bucket, Key=manifest_key)["Body"].read().decode() == rows


def test_retry_failed_makes_a_manifest_of_the_failed_rows_and_a_job_over_it(clients, bucket, capsys):
    failed = (
        f"{bucket},uploads/slow.jpg,,failed,500,TemporaryFailure,SlowDown: simulated\n"
        f'{bucket},uploads/Summer+2024/caf%C3%A9.jpg,,failed,400,PermanentFailure,"not_an_image: a, b"\n'
    )
    rows = f"{bucket},uploads/slow.jpg\n{bucket},uploads/Summer+2024/caf%C3%A9.jpg\n"
    assert_retry_makes(clients, bucket, failed, rows, ["Bucket", "Key"])
    assert capsys.readouterr().out.splitlines() == [
        f"job {JOB_ID}: the failed tasks of job {OLD_JOB} again; "
        f"report under s3://{bucket}/results/batch-operations/job-{JOB_ID}/"
    ]


def test_retry_failed_without_failures_or_without_a_report_says_so(clients, bucket, capsys):
    for _ in range(2):
        clients.stacks.add_response("describe_stacks", stack_answer(bucket), {"StackName": "pointrend-lambda"})
    assert run(args("--retry-failed", OLD_JOB), clients) == 1
    assert (
        f"results/batch-operations/job-{OLD_JOB}/manifest.json (NoSuchKey): has the job ended?"
        in capsys.readouterr().err
    )
    put_report(clients.s3, bucket, "")
    assert run(args("--retry-failed", OLD_JOB), clients) == 1
    assert f"error: job {OLD_JOB} has no failed tasks: nothing to retry" in capsys.readouterr().err


def test_neither_objects_nor_a_job_is_an_error(clients, bucket, capsys):
    clients.stacks.add_response("describe_stacks", stack_answer(bucket), {"StackName": "pointrend-lambda"})
    assert run(args(), clients) == 1
    assert "error: name the objects, s3://BUCKET/PREFIX, or --retry-failed JOB_ID" in capsys.readouterr().err


def test_retry_failed_keeps_each_tasks_version(clients, bucket, capsys):
    """A versioned bucket's report names each task's version: the retry manifest keeps it (Bucket,Key,VersionId)."""
    failed = (
        f"{bucket},uploads/slow.jpg,3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY,failed,500,TemporaryFailure,SlowDown\n"
        f"{bucket},uploads/b.jpg,UIORUnfndfiufdisojhr398493jfdkjFJjkndnqUifhnw89493jJFJ,failed,500,TemporaryFailure,x\n"
    )
    rows = (
        f"{bucket},uploads/slow.jpg,3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY\n"
        f"{bucket},uploads/b.jpg,UIORUnfndfiufdisojhr398493jfdkjFJjkndnqUifhnw89493jJFJ\n"
    )
    assert_retry_makes(clients, bucket, failed, rows, ["Bucket", "Key", "VersionId"])
