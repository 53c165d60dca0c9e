"""PointRend instance segmentation as a serverless service."""

__version__ = "0.1.0"
