"""Fault: the worker process is killed mid-image (SIGKILL, what Lambda's out-of-memory killer does) under AWS's
emulator, and what the job then reads, end to end against moto server.

A job is created and its photo uploaded (the API, in this process); its S3 notification goes to the worker:
the image's entry point under the emulator (infra.rie), the worker's template environment. As soon as the
runtime logs that it is segmenting, the test SIGKILLs it. The emulator answers as Lambda does
(``Runtime.ExitError``, "signal: killed"); the job still reads ``processing``. Lambda would then put its record
of the failed invocation (that answer as ``responsePayload``, the S3 event as ``requestPayload``) on the
failure queue: the test sends exactly that record to an SQS queue of moto, receives it, and hands it to the
worker as its event source mapping would. The job then reads ``failed``, code ``out_of_memory``.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import boto3
import httpx
import pytest
from conftest import IMAGES, FakeLambdaContext, read_event
from moto_fixtures import AWS_ENVIRONMENT

from infra import image_spec, rie
from infra.processes import Running

pytestmark = pytest.mark.slow

SEGMENTING = "s3 object read: segmenting"  # the worker's log line once the image is read


def kill_while_segmenting(killed: list[int], timeout: float = 120.0) -> Any:
    def during(running: Running) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if SEGMENTING in running.logs():
                for pid in running.runtime_pids():
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                return
            time.sleep(0.02)

    return during


def sqs_event_of(sqs: Any, queue_url: str, record_body: str) -> dict[str, Any]:
    """The record sent to the (moto) failure queue and received back, as Lambda's SQS event source delivers it."""
    sqs.send_message(QueueUrl=queue_url, MessageBody=record_body)
    (message,) = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=1, AttributeNames=["All"])["Messages"]
    template = read_event("sqs-failure-out-of-memory.json")["Records"][0]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return {
        "Records": [
            {
                **template,
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": message["Attributes"],
                "md5OfBody": message["MD5OfBody"],
                "eventSourceARN": queue_arn,
            }
        ]
    }


def test_a_worker_killed_mid_image_ends_the_job_failed_out_of_memory(
    client: Any, jobs_bucket: str, lambda_handler: Any, s3: Any, moto_endpoint: str, test_model_path: Path
) -> None:
    job = client.post("/jobs", json={"filename": "astronaut.jpg", "confidence": 0}).json()
    form = job["upload"]
    photo = (IMAGES / "astronaut.jpg").read_bytes()
    assert httpx.post(form["url"], data=form["fields"], files={"file": ("photo", photo)}, timeout=30).status_code == 204
    key = form["fields"]["key"]
    etag = s3.head_object(Bucket=jobs_bucket, Key=key)["ETag"].strip('"')
    event = read_event("s3-post-job.json", **{"pointrend-uploads-example": jobs_bucket})
    event["Records"][0]["s3"]["object"].update(key=quote_plus(key, "/"), eTag=etag)

    def status() -> dict[str, Any]:
        return client.get(job["status_url"]).json()

    killed: list[int] = []
    env = {
        **AWS_ENVIRONMENT,
        "AWS_ENDPOINT_URL": moto_endpoint,
        "SEG_MODEL_PATH": str(test_model_path),
        "SEG_DETECTION_SPEED": "normal",
        "AWS_LAMBDA_FUNCTION_TIMEOUT": "120",  # a cold start on a shared machine: room for the init
    }
    report = rie.invoke(
        [event], env=env, timeout=150, function_id=image_spec.WORKER_ID, during=kill_while_segmenting(killed)
    )
    assert report.stopped and killed, report.logs[-3000:]
    (answer,) = report.invocations
    assert answer.body["errorType"] == "Runtime.ExitError", answer.body
    assert "signal: killed" in answer.body["errorMessage"]
    assert status()["status"] == "processing", "killed: nothing written, no outcome yet"

    # What Lambda sends to the on-failure destination (retries at 0 here: one attempt, killed).
    record = {
        "version": "1.0",
        "timestamp": "2026-12-02T06:00:00.000Z",
        "requestContext": {
            "requestId": answer.body["errorMessage"].split()[1],
            "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:pointrend-WorkerFunction:$LATEST",
            "condition": "RetriesExhausted",
            "approximateInvokeCount": 1,
        },
        "requestPayload": event,
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": answer.body,
    }
    sqs = boto3.client("sqs")
    queue_url = sqs.create_queue(QueueName=f"failure-queue-{job['job_id'][:8]}")["QueueUrl"]
    handled = lambda_handler(sqs_event_of(sqs, queue_url, json.dumps(record)), FakeLambdaContext())
    assert handled == {"batchItemFailures": []}

    failed = status()
    assert failed["status"] == "failed" and failed["error"]["code"] == "out_of_memory", failed
    assert "WorkerMemorySize" in failed["error"]["message"]
