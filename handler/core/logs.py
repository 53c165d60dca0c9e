"""The service's structured (JSON) logger; ``lambda_handler`` adds the request id to every line.

Job ids are the only capability a job has (``GET /jobs/{job_id}``): every log line keeps only their first
8 hex digits, whether the id comes in a URL path, an S3 key or a message.
"""

from __future__ import annotations

import logging
import os
import re
from typing import Any

from aws_lambda_powertools import Logger

JOB_ID_IN_TEXT = re.compile(r"(jobs/[0-9a-f]{8})[0-9a-f]{24}")


def redact_job_ids(value: Any) -> Any:
    """``jobs/0123456789abcdef...`` -> ``jobs/01234567…`` in a string, or in the strings of a list/dict."""
    if isinstance(value, str):
        return JOB_ID_IN_TEXT.sub(r"\1…", value)
    if isinstance(value, list | tuple):
        return type(value)(redact_job_ids(item) for item in value)
    if isinstance(value, dict):
        return {name: redact_job_ids(item) for name, item in value.items()}
    return value


class RedactJobIds(logging.Filter):
    """Message, arguments and extra fields; an exception's own text is the raiser's to redact."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in vars(record).items():
            if isinstance(value, str | list | tuple | dict) and name != "exc_info":
                setattr(record, name, redact_job_ids(value))
        return True


logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME", "pointrend"))
logger.addFilter(RedactJobIds())
