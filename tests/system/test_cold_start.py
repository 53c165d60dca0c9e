"""The init's import graph: what ``import handler.lambda_function`` (imports + model load) brings in, in a
fresh interpreter, for each function as template.yaml deploys it. Heavy modules it has shed stay out:
``torch._dynamo`` (torchvision's roi_align imported it at module level: ``handler/model/no_dynamo.py``)
and the compiler stack behind it, and scipy (video tracks import it when they first match); the worker
imports no FastAPI app, the HTTP function no S3 event code.
How long the init takes: bench/engine.py's ``init_ratio`` (docs/performance.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import REPO

pytestmark = pytest.mark.slow

# scipy: only video's track matching uses it, imported there on first use (0.46 s of the init otherwise).
NEVER = ("torch._dynamo", "torch._inductor", "sympy", "triton", "scipy")
NOT_FOR = {
    "http": ("handler.s3", "aws_lambda_powertools.utilities.batch", "aws_lambda_powertools.utilities.parser"),
    "s3": ("handler.api", "fastapi", "starlette", "mangum", "uvicorn"),
}
PROGRAM = "import sys, handler.lambda_function; print(json.dumps(sorted(sys.modules)))"


def init_modules(serves: str, test_model_path) -> set[str]:
    env = {**os.environ, "SEG_SERVES": serves, "SEG_MODEL_PATH": str(test_model_path)}
    env.pop("AWS_LAMBDA_INITIALIZATION_TYPE", None)
    done = subprocess.run(
        [sys.executable, "-c", f"import json; {PROGRAM}"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return set(json.loads(done.stdout.splitlines()[-1]))


def shed(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(module for module in modules for name in names if module == name or module.startswith(f"{name}."))


@pytest.mark.parametrize("serves", ["http", "s3"])
def test_the_init_imports_only_what_the_function_serves(serves, test_model_path):
    modules = init_modules(serves, test_model_path)
    assert "torchvision.ops.roi_align" in modules and "handler.engine" in modules  # the model is there
    assert shed(modules, NEVER) == []
    assert shed(modules, NOT_FOR[serves]) == []


def test_the_checker_sees_a_heavy_module():
    assert shed({"torch", "torch._dynamo.utils", "fastapi"}, NEVER) == ["torch._dynamo.utils"]


def test_torch_dynamo_still_imports_for_whoever_needs_it(test_model_path):
    # The stand-in is gone after the init: torch.compile and friends get the real package.
    env = {**os.environ, "SEG_SERVES": "http", "SEG_MODEL_PATH": str(test_model_path)}
    program = (
        "import sys, handler.model, torch._dynamo.utils as utils; "
        "assert 'stand-in' not in (utils.__doc__ or ''); assert callable(utils.is_compile_supported); "
        "import torchvision.ops.roi_align; "
        "print(sys.modules['torchvision.ops.roi_align'].is_compile_supported('cpu'))"
    )
    done = subprocess.run(
        [sys.executable, "-c", program], cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0 and done.stdout.strip() in ("True", "False"), done.stderr[-3000:]


def test_the_router_claims_only_the_sides_it_serves(lambda_handler):
    from handler import api, s3
    from handler.lambda_function import load_sources

    assert load_sources("http") == (api,) and load_sources("s3") == (s3,) and load_sources("all") == (s3, api)
