"""What every part of the service shares: settings, the model catalogue (release files, URLs, pins), the error
taxonomy, logs, metrics, the deadline, S3 storage (one client, the one s3:// parser, listing and XML error
reader), the allocator tuning and the CPUs the process may use. Core imports no other part of handler/."""

__all__ = ["allocator", "catalogue", "cpus", "deadline", "errors", "logs", "measured", "metrics", "settings", "storage"]
