"""What every part of the service shares: settings, the error taxonomy, logs, metrics, the deadline, S3 storage
(one client, the one s3:// parser) and the allocator tuning. Core imports no other part of handler/."""

__all__ = ["allocator", "deadline", "errors", "logs", "measured", "metrics", "settings", "storage"]
