"""The S3 side: S3 notifications (direct, through SQS or EventBridge) naming uploaded objects, and S3 Batch
Operations tasks naming existing ones, each segmented and its result written back to S3; and the failure
queue's records of invocations that failed for good, each written back as the upload's error record.

May import ``handler.engine`` (the one path to the model) and the shared modules; never ``handler.api``.
"""

from handler.s3.events import MalformedRecord, ObjectsFailed, UnknownEvent, claims, handle
from handler.s3.objects import BATCH_TASK, ObjectRef, Processed, entry_point, output_key, process, skip_reason

__all__ = [
    "BATCH_TASK",
    "MalformedRecord",
    "ObjectRef",
    "ObjectsFailed",
    "Processed",
    "UnknownEvent",
    "claims",
    "entry_point",
    "handle",
    "output_key",
    "process",
    "skip_reason",
]
