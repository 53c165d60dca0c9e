"""``backfill --retry-failed JOB_ID``: a new job over the tasks an earlier job's completion report lists as failed.

The report's ``manifest.json`` names its CSV files, the failed tasks' apart; their ``Bucket,Key`` columns
(keys URL-encoded, as a manifest wants them) become a CSV manifest under ``<report prefix>/retries/``, where
the stack's ``BatchOperationsRole`` may read it.
"""

from __future__ import annotations

import argparse
import csv
import io
import json

from botocore.exceptions import ClientError

from handler.cli.backfill import BackfillError, Clients, JobPlace, Stack, submit, user_arguments


def failed_tasks(clients: Clients, place: JobPlace, job_id: str) -> list[tuple[str, str]]:
    """(bucket, URL-encoded key) of every failed task in the job's report."""
    key = f"{place.report_prefix}/job-{job_id}/manifest.json"
    try:
        manifest = json.loads(clients.s3.get_object(Bucket=place.report_bucket, Key=key)["Body"].read())
        failed = []
        for result in manifest["Results"]:
            if result["TaskExecutionStatus"] == "failed":
                text = clients.s3.get_object(Bucket=result["Bucket"], Key=result["Key"])["Body"].read().decode()
                failed += [(row[0], row[1]) for row in csv.reader(io.StringIO(text)) if len(row) >= 2]
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
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
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(failed)
    key = f"{place.report_prefix}/retries/job-{job_id}.csv"
    put = clients.s3.put_object(
        Bucket=place.report_bucket, Key=key, Body=text.getvalue().encode(), ContentType="text/csv"
    )
    manifest = {
        "Manifest": {
            "Spec": {"Format": "S3BatchOperations_CSV_20180820", "Fields": ["Bucket", "Key"]},
            "Location": {"ObjectArn": f"arn:aws:s3:::{place.report_bucket}/{key}", "ETag": put["ETag"].strip('"')},
        }
    }
    description = f"pointrend retry of {len(failed)} failed tasks of job {job_id}"
    return submit(clients.s3control, place, args, manifest, arguments, description)
