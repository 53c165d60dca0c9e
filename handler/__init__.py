"""PointRend instance segmentation as a serverless service."""

from handler.core.allocator import tune_allocator

__version__ = "0.1.0"

# Before any thread starts (the allocator's one-arena rule holds only for threads created after it).
tune_allocator()
