"""The service's structured (JSON) logger; ``lambda_handler`` adds the request id to every line."""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger

logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME", "pointrend"))
