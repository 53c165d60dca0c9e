"""``backfill --retry-failed JOB_ID``: a new job over the tasks an earlier job's completion report lists as failed.

The report's ``manifest.json`` names its CSV files, the failed tasks' apart; their ``Bucket,Key,VersionId``
columns (keys URL-encoded, as a manifest wants them) become a CSV manifest under ``<report prefix>/retries/``,
where the stack's ``BatchOperationsRole`` may read it. Each task keeps the version it named, so a retry segments
the same version (a manifest names a version for every row or for none: when only some rows have one, the
retry names none, and the worker reads each key's latest version; it says so).
"""

from __future__ import annotations

import argparse
import csv
import io
import json

from botocore.exceptions import ClientError

from handler.cli.batch_jobs import BackfillError, Clients, JobPlace, Stack, create_lambda_job, user_arguments
from handler.core import storage


def failed_tasks(clients: Clients, place: JobPlace, job_id: str) -> list[tuple[str, str, str]]:
    """(bucket, URL-encoded key, version id or "") of every failed task in the job's report."""
    key = f"{place.report_prefix}/job-{job_id}/manifest.json"
    try:
        manifest = json.loads(clients.s3.get_object(Bucket=place.report_bucket, Key=key)["Body"].read())
        failed = []
        for result in manifest["Results"]:
            if result["TaskExecutionStatus"] == "failed":
                text = clients.s3.get_object(Bucket=result["Bucket"], Key=result["Key"])["Body"].read().decode()
                rows = [row for row in csv.reader(io.StringIO(text)) if len(row) >= 2]
                failed += [(row[0], row[1], row[2] if len(row) > 2 else "") for row in rows]
    except ClientError as exc:
        code = storage.error_code(exc)
        raise BackfillError(
            f"cannot read the report s3://{place.report_bucket}/{key} ({code}): has the job ended?"
        ) from exc
    return failed


def retry_failed(args: argparse.Namespace, clients: Clients, stack: Stack, job_id: str) -> tuple[str, str]:
    arguments = user_arguments(args)
    place = JobPlace.of(args, stack)
    failed = failed_tasks(clients, place, job_id)
    if not failed:
        raise BackfillError(f"job {job_id} has no failed tasks: nothing to retry")
    versioned = all(version for _, _, version in failed)
    if not versioned and any(version for _, _, version in failed):
        print("note: only some failed tasks named a version: the retry segments each key's latest version")
    fields = ["Bucket", "Key", "VersionId"] if versioned else ["Bucket", "Key"]
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(row if versioned else row[:2] for row in failed)
    key = f"{place.report_prefix}/retries/job-{job_id}.csv"
    put = clients.s3.put_object(
        Bucket=place.report_bucket, Key=key, Body=text.getvalue().encode(), ContentType="text/csv"
    )
    manifest = {
        "Manifest": {
            "Spec": {"Format": "S3BatchOperations_CSV_20180820", "Fields": fields},
            "Location": {"ObjectArn": f"arn:aws:s3:::{place.report_bucket}/{key}", "ETag": put["ETag"].strip('"')},
        }
    }
    description = f"pointrend retry of {len(failed)} failed tasks of job {job_id}"
    return create_lambda_job(clients.s3control, place, args, manifest, arguments, description)
