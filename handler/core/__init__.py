"""What every part of the service shares: settings, the error taxonomy, logs, metrics, the deadline, S3 storage
(one client, the one s3:// parser), the allocator tuning and the CPUs the process may use. Core imports no
other part of handler/."""

__all__ = ["allocator", "cpus", "deadline", "errors", "logs", "measured", "metrics", "settings", "storage"]
