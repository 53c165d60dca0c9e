"""The S3 Batch Operations job pieces ``backfill`` and ``backfill --retry-failed`` share: the stack's outputs,
where a job runs and reports (``JobPlace``), ``create_lambda_job`` (``s3control.create_job`` invoking the
worker once per object) and ``wait`` (``describe_job`` until the job ends)."""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from tqdm import tqdm

from handler.core.errors import InvalidRequest
from handler.engine import RequestOptions

REPORT_FOLDER = "batch-operations"
DONE = frozenset({"Complete", "Failed", "Cancelled"})


class BackfillError(Exception):
    """A problem the user can fix (missing role, unreadable bucket, failed job): printed, exit code 1."""


@dataclass
class Clients:
    s3: Any
    s3control: Any
    cloudformation: Any

    @classmethod
    def from_environment(cls) -> Clients:
        return cls(boto3.client("s3"), boto3.client("s3control"), boto3.client("cloudformation"))


@dataclass
class Stack:
    """The deployed stack's outputs and parameters (empty when it cannot be read)."""

    outputs: dict[str, str] = field(default_factory=dict)
    parameters: dict[str, str] = field(default_factory=dict)

    @classmethod
    def read(cls, cloudformation: Any, name: str) -> Stack:
        try:
            (stack,) = cloudformation.describe_stacks(StackName=name)["Stacks"]
        except (ClientError, BotoCoreError, ValueError):
            return cls()
        return cls(
            outputs={o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])},
            parameters={p["ParameterKey"]: p["ParameterValue"] for p in stack.get("Parameters", [])},
        )


def user_arguments(args: argparse.Namespace) -> dict[str, str]:
    """The options given, checked here as the worker will check them, so a typo fails before the job does."""
    given = {name: getattr(args, name) for name in ("masks", "confidence", "classes", "overlay", "cutouts")}
    given = {name: value for name, value in given.items() if value is not None}
    try:
        RequestOptions.parse(given, source="options", prefix="--")
    except InvalidRequest as exc:
        raise BackfillError(exc.message) from None
    return given


def account_id(args: argparse.Namespace, stack: Stack) -> str:
    if args.account_id:
        return args.account_id
    function = args.function_arn or stack.outputs.get("WorkerFunctionArn", "")
    parts = function.split(":")
    if len(parts) < 5 or not parts[4].isdigit():
        raise BackfillError("no account id: pass --account-id, or --function-arn with the worker's full ARN")
    return parts[4]


def setting(value: str | None, stack: Stack, output: str, what: str) -> str:
    found = value or stack.outputs.get(output)
    if not found:
        raise BackfillError(f"no {what}: stack outputs have no {output} (deployed? --stack); or pass it as a flag")
    return found


@dataclass(frozen=True)
class JobPlace:
    """What every job of this stack names: the worker, the role, the account, where reports go."""

    role: str
    function: str
    account: str
    report_bucket: str
    report_prefix: str

    @classmethod
    def of(cls, args: argparse.Namespace, stack: Stack) -> JobPlace:
        return cls(
            role=setting(args.role_arn, stack, "BatchOperationsRoleArn", "role for the job (--role-arn)"),
            function=setting(args.function_arn, stack, "WorkerFunctionArn", "worker function (--function-arn)"),
            account=account_id(args, stack),
            report_bucket=setting(args.report_bucket, stack, "InputBucketName", "report bucket (--report-bucket)"),
            report_prefix=args.report_prefix or f"{stack.parameters.get('OutputPrefix', 'results/')}{REPORT_FOLDER}",
        )

    def report(self, job_id: str) -> str:
        return f"s3://{self.report_bucket}/{self.report_prefix}/job-{job_id}/"


def create_lambda_job(
    s3control: Any,
    place: JobPlace,
    args: argparse.Namespace,
    manifest: dict[str, Any],
    arguments: dict[str, str],
    description: str,
) -> tuple[str, str]:
    """``create_job`` with ``manifest`` (``ManifestGenerator`` or ``Manifest``): the worker once per object."""
    try:
        created = s3control.create_job(
            AccountId=place.account,
            ConfirmationRequired=False,
            Operation={
                "LambdaInvoke": {
                    "FunctionArn": place.function,
                    "InvocationSchemaVersion": "2.0",
                    "UserArguments": arguments,
                }
            },
            Report={
                "Bucket": f"arn:aws:s3:::{place.report_bucket}",
                "Prefix": place.report_prefix,
                "Format": "Report_CSV_20180820",
                "Enabled": True,
                "ReportScope": "AllTasks",
            },
            ClientRequestToken=str(uuid.uuid4()),
            Priority=args.priority,
            RoleArn=place.role,
            Description=description[:256],
            **manifest,
        )
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise BackfillError(
            f"S3 refused the job ({error.get('Code')}: {error.get('Message')}); the role must exist and trust "
            "batchoperations.s3.amazonaws.com, and you need s3:CreateJob and iam:PassRole on it"
        ) from exc
    return created["JobId"], place.report(created["JobId"])


def wait(s3control: Any, account: str, job_id: str, report: str, poll_seconds: float) -> int:
    """Follow the job with a progress bar; 0 when every task succeeded."""
    with tqdm(desc=f"job {job_id[:8]}", unit=" tasks", file=sys.stderr) as progress:
        while True:
            job = s3control.describe_job(AccountId=account, JobId=job_id)["Job"]
            summary = job.get("ProgressSummary", {})
            done = summary.get("NumberOfTasksSucceeded", 0) + summary.get("NumberOfTasksFailed", 0)
            progress.total = summary.get("TotalNumberOfTasks") or None
            progress.update(done - progress.n)
            if job["Status"] in DONE:
                break
            time.sleep(poll_seconds)
    failed = summary.get("NumberOfTasksFailed", 0)
    if job["Status"] != "Complete":
        reasons = "; ".join(f"{r.get('FailureCode')}: {r.get('FailureReason')}" for r in job.get("FailureReasons", []))
        raise BackfillError(f"job {job_id} {job['Status'].lower()}: {reasons or 'no reason given'}; report: {report}")
    print(f"job {job_id} complete: {done - failed:,} succeeded, {failed:,} failed; report: {report}")
    return 1 if failed else 0
