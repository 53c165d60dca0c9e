"""A throwaway Lambda handler module that fails at import, as the real one does with a bad model path."""

import os

raise FileNotFoundError(f"model weights not found: SEG_MODEL_PATH={os.environ.get('SEG_MODEL_PATH')}")


def handler(event, context):  # never reached
    return event
