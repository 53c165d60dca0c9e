"""A SAM template for ``sam local invoke`` / ``sam local start-api`` on an image that is already built.

    python -m infra.sam_local_template IMAGE:TAG OUT.yaml [NAME=VALUE ...]

``make image-smoke`` builds the image with Podman, so ``sam build`` is skipped: the function names the image
(``ImageUri: name:tag``, no registry part) and says ``Metadata: {SkipBuild: true}``. Everything else comes
from template.yaml's HTTP function (command, memory, environment at the parameter defaults), with the
``NAME=VALUE`` environment overrides on top, and the HTTP API routes the smoke calls.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from infra.image_spec import FUNCTION_ID, function_spec

# Routes the smoke calls through `sam local start-api` (its implicit HTTP API, payload 2.0 as deployed).
ROUTES = {"Segment": ("POST", "/segment"), "Health": ("GET", "/healthz")}
# The smoke may run on a small shared machine, where the cold start alone can use much of the deployed timeout.
SMOKE_TIMEOUT_S = 120


def sam_local_template(image: str, overrides: dict[str, str]) -> dict[str, object]:
    spec = function_spec()
    environment = {**spec.environment, **overrides}
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Transform": "AWS::Serverless-2016-10-31",
        "Description": f"sam local on the built image {image} (infra/sam_local_template.py)",
        "Resources": {
            FUNCTION_ID: {
                "Type": "AWS::Serverless::Function",
                "Metadata": {"SkipBuild": True},
                "Properties": {
                    "PackageType": "Image",
                    "ImageUri": image,
                    "ImageConfig": {"Command": spec.image_command},
                    "MemorySize": spec.memory_size,
                    "Timeout": SMOKE_TIMEOUT_S,
                    "Environment": {"Variables": environment},
                    "Events": {
                        name: {"Type": "HttpApi", "Properties": {"Method": method, "Path": path}}
                        for name, (method, path) in ROUTES.items()
                    },
                },
            }
        },
    }


def main(argv: list[str]) -> int:
    image, out, *pairs = argv
    overrides = dict(pair.split("=", 1) for pair in pairs)
    Path(out).write_text(yaml.safe_dump(sam_local_template(image, overrides), sort_keys=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
