"""The image and the SAM template: linters, and the promises the Dockerfile and template.yaml make.

hadolint, cfn-lint and ``sam validate --lint`` all run offline from the venv (requirements-dev.txt).
The consistency tests read ENTRYPOINT/CMD out of the Dockerfile and the handler and environment out of
template.yaml and compare them with what ``python -m infra invoke`` (infra.rie) runs.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

from handler.core import catalogue
from handler.core.settings import Settings
from infra import bake_model, image_spec, sam_local_template
from infra.rie import IMAGE_ENV

BIN = Path(sys.executable).parent
DOCKERFILE = REPO / "Dockerfile"
TEMPLATE = REPO / "template.yaml"
HANDLER = "handler.lambda_function.lambda_handler"


def tool(name: str) -> str:
    path = BIN / name
    if not path.exists():
        pytest.fail(f"{name} is not installed in the venv: pip install -r requirements-dev.txt")
    return str(path)


def run_tool(*argv: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, SAM_CLI_TELEMETRY="0", AWS_DEFAULT_REGION=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))
    return subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def template() -> dict:
    return image_spec.load_template(TEMPLATE)


@pytest.fixture(scope="module")
def function(template) -> dict:
    """The HTTP function."""
    return template["Resources"][image_spec.FUNCTION_ID]["Properties"]


@pytest.fixture(scope="module")
def worker(template) -> dict:
    """The worker function: S3 uploads, Batch Operations."""
    return template["Resources"][image_spec.WORKER_ID]["Properties"]


def statements(function: dict) -> list[dict]:
    """The function's policy statements; a conditional one (Fn::If) as its statement."""
    found = []
    for policy in function["Policies"]:
        for statement in policy["Statement"]:
            if "Fn::If" in statement:
                _, statement, otherwise = statement["Fn::If"]
                assert otherwise == {"Ref": "AWS::NoValue"}
            found.append(statement)
    return found


def final_stage(text: str) -> str:
    return re.split(r"(?im)^FROM\s", text)[-1]


# --- linters -------------------------------------------------------------------------------------


def test_hadolint_dockerfile():
    result = run_tool(tool("hadolint"), "Dockerfile")
    assert result.returncode == 0, result.stdout + result.stderr


def test_cfn_lint_template():
    result = run_tool(tool("cfn-lint"), "template.yaml")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_sam_validate_lint():
    result = run_tool(tool("sam"), "validate", "--lint", "--template-file", "template.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is a valid SAM Template" in result.stdout + result.stderr


# --- Dockerfile ----------------------------------------------------------------------------------


def test_dockerfile_entrypoint_and_cmd():
    assert image_spec.dockerfile_exec_form(DOCKERFILE) == (["python", "-m", "awslambdaric"], [HANDLER])


def test_dockerfile_final_stage_is_slim_python_without_compilers():
    text = DOCKERFILE.read_text()
    assert re.search(r"(?m)^ARG PYTHON_IMAGE=python:3\.11-slim$", text)
    stages = re.findall(r"(?im)^FROM\s+(\S+)(?:\s+AS\s+(\w+))?", text)
    assert [name for _, name in stages] == ["builder", "model", ""], "builder, model, then the unnamed final stage"
    assert all(image == "${PYTHON_IMAGE}" for image, _ in stages)
    final = final_stage(text)
    assert "apt-get" not in final and not re.search(r"\b(gcc|g\+\+|build-essential|cmake)\b", final)
    assert "COPY --from=builder /opt/venv /opt/venv" in final
    assert "COPY --from=model /opt/model /opt/model" in final


def test_dockerfile_installs_cpu_torch_then_the_requirements():
    text = DOCKERFILE.read_text()
    assert "ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu" in text
    assert "ARG TORCH_VERSION=2.14.1" in text and "ARG TORCHVISION_VERSION=0.29.1" in text
    torch = text.index('--index-url "${TORCH_INDEX_URL}"')
    requirements = text.index("pip install -r /tmp/requirements/requirements.txt")
    nodeps = text.index("pip install --no-deps -r /tmp/requirements/requirements-nodeps.txt")
    assert torch < requirements < nodeps
    pins = (REPO / "requirements.txt").read_text()
    assert re.search(r"(?m)^torch==2\.14\.1$", pins) and re.search(r"(?m)^torchvision==0\.29\.1$", pins)


def test_dockerfile_bakes_the_checked_model_and_points_caches_at_tmp():
    text = DOCKERFILE.read_text()
    assert 'ARG MODEL_SHA256=""' in text and 'ARG MODEL_URL=""' in text  # empty: the catalogue's URL
    assert "bake_model.py" in text and '--sha256 "${MODEL_SHA256}"' in text
    # the release file is named by the model catalogue, which the bake step reads: never spelled here
    assert "handler/core/catalogue.py" in text and "pointrend_" not in text
    final = final_stage(text)
    env = dict(re.findall(r"\b([A-Z_]+)=(\S+)", "".join(re.findall(r"(?ms)^ENV .*?[^\\]$", final))))
    assert re.search(r"(?m)^ARG MODEL_BACKBONE=resnet50$", text.split("FROM", 1)[0]), "one build arg, resnet50 default"
    assert '--backbone "${MODEL_BACKBONE}"' in text and "--dest-dir /opt/model" in text
    assert env["SEG_MODEL_PATH"] == "/opt/model/"  # a folder: settings take the backbone's release file in it
    assert env["SEG_MODEL_BACKBONE"] == "${MODEL_BACKBONE}" and re.search(r"(?m)^ARG MODEL_BACKBONE$", final)
    for name in ("HOME", "TORCH_HOME", "XDG_CACHE_HOME", "MPLCONFIGDIR"):
        assert env[name].startswith("/tmp"), name
    # one malloc arena (handler/core/allocator.py), and the emulator runs with the same
    assert env["MALLOC_ARENA_MAX"] == "1"
    assert {name: env[name] for name in IMAGE_ENV} == IMAGE_ENV


def test_dockerfile_runs_as_any_user_without_writing_outside_tmp():
    """No USER: SAM's emulator layer (``RUN mv ... && chmod +x ...``) runs as the image's user and fails as
    a non-root one; Lambda picks its own non-root user anyway. So the image must work for any user: the
    code readable by all, the weights 0644, and the smoke runs it as uid 1000, root file system read-only."""
    final = final_stage(DOCKERFILE.read_text())
    assert not re.search(r"(?im)^USER\s", final)
    assert "chmod -R a+rX /var/task" in final
    assert "os.chmod(part, 0o644)" in inspect.getsource(bake_model.bake)
    smoke = (REPO / "infra" / "image_smoke.sh").read_text()
    assert "--user 1000:1000" in smoke and "--read-only" in smoke and "--tmpfs /tmp" in smoke


def test_dockerignore_keeps_the_context_small():
    lines = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()]
    patterns = [line for line in lines if line and not line.startswith("#")]
    assert patterns[0] == "*", "an allow-list: everything out, then what the image needs back in"
    allowed = {line[1:] for line in patterns if line.startswith("!")}
    assert {"requirements.txt", "requirements-nodeps.txt", "handler/", "infra/bake_model.py"} <= allowed
    assert not any(entry.startswith((".venv", "tests", ".git", "events", "bench")) for entry in allowed)


# --- the image's command vs. the template vs. what `invoke` runs ------------------------------------


def test_template_command_matches_the_dockerfile_cmd(function, worker):
    _, cmd = image_spec.dockerfile_exec_form(DOCKERFILE)
    for props in (function, worker):
        assert props["PackageType"] == "Image"
        assert props["ImageConfig"]["Command"] == cmd
        assert "EntryPoint" not in props["ImageConfig"], "the Dockerfile's ENTRYPOINT is the one that runs"
        assert props["Architectures"] == [{"Ref": "Architecture"}]


def test_invoke_runs_the_dockerfile_entrypoint_and_cmd():
    entrypoint, cmd = image_spec.dockerfile_exec_form(DOCKERFILE)
    assert image_spec.runtime_command() == [sys.executable, *entrypoint[1:], *cmd]


def test_invoke_uses_the_template_environment(function):
    spec = image_spec.function_spec()
    variables = function["Environment"]["Variables"]
    assert set(spec.environment) == set(variables), f"unresolved locally: {spec.unresolved}"
    assert spec.environment["SEG_INPUT_PREFIX"] == "uploads/"
    assert spec.environment["SEG_OUTPUT_PREFIX"] == "results/"
    assert spec.timeout == 29 and spec.memory_size >= 2048
    worker = image_spec.function_spec(function_id=image_spec.WORKER_ID)
    assert worker.timeout == 300 and worker.memory_size >= 2048
    # The worker serves no s3_uri requests and signs no job uploads.
    http_only = {"SEG_ALLOW_S3_URI", "SEG_ALLOWED_BUCKETS", "SEG_JOBS_BUCKET"}
    shared = set(variables) - http_only - {"SEG_SERVES"}  # each function imports only its own side
    assert {name: worker.environment[name] for name in shared} == {name: spec.environment[name] for name in shared}
    assert (spec.environment["SEG_SERVES"], worker.environment["SEG_SERVES"]) == ("http", "s3")
    assert not http_only & set(worker.environment)
    assert worker.environment["SEG_BACKFILL_BUCKET"] == "" and worker.environment["SEG_BACKFILL_PREFIX"] == ""


def test_cmd_names_the_handler_module_path():
    _, (cmd,) = image_spec.dockerfile_exec_form(DOCKERFILE)
    module, _, function_name = cmd.rpartition(".")
    assert (module, function_name) == ("handler.lambda_function", "lambda_handler")
    assert (REPO / "handler" / "__init__.py").is_file()


def test_cmd_names_an_importable_function(test_model_path):
    _, (cmd,) = image_spec.dockerfile_exec_form(DOCKERFILE)
    module_name, _, function_name = cmd.rpartition(".")
    module = importlib.import_module(module_name)
    handler = getattr(module, function_name)
    assert callable(handler)
    assert len(inspect.signature(handler).parameters) == 2, "lambda_handler(event, context)"


def test_template_environment_is_valid_settings(monkeypatch):
    from handler.core.cpus import available_cpus
    from handler.core.settings import Settings

    for name, value in image_spec.function_spec().environment.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.confidence == 0.5
    assert settings.input_prefix == "uploads/" and settings.output_prefix == "results/"
    assert settings.torch_threads == available_cpus()  # TorchThreads auto: the CPUs the process may use
    assert settings.allow_s3_uri is False  # ApiAuth NONE by default: nobody's s3_uri is read
    assert settings.allowed_buckets == ["local-123456789012-uploads/uploads/"]


# --- template: parameters, events, least privilege, the bucket -----------------------------------


def test_parameters(template):
    params = template["Parameters"]
    assert params["Timeout"]["MaxValue"] <= 29 and params["Timeout"]["Default"] <= 29
    assert "API Gateway" in params["Timeout"]["Description"]
    assert params["MemorySize"]["Default"] >= 2048
    assert set(params["Architecture"]["AllowedValues"]) == {"x86_64", "arm64"}
    assert set(params["ApiAuth"]["AllowedValues"]) == {"NONE", "IAM", "JWT"}
    assert {"JwtIssuer", "JwtAudience", "Confidence", "InputPrefix", "OutputPrefix"} <= set(params)
    assert params["InputPrefix"]["Default"] == "uploads/" and params["OutputPrefix"]["Default"] == "results/"
    assert not params["OutputPrefix"]["Default"].startswith(params["InputPrefix"]["Default"])


def test_worker_parameters_and_reserved_concurrency(template, worker):
    params = template["Parameters"]
    assert params["WorkerTimeout"]["MaxValue"] == 900
    assert params["WorkerTimeout"]["Default"] >= 60 + 10  # the largest image's budget + a cold start (docs/bulk.md)
    assert params["WorkerMemorySize"]["Default"] >= 2048
    # Reserved by default (the cost cap, docs/operations.md); 0 or empty: no reservation at all (a condition),
    # so a new account's quota of 50 can deploy with WorkerReservedConcurrency=0.
    assert params["WorkerReservedConcurrency"]["Default"] == "10"
    assert worker["ReservedConcurrentExecutions"] == {
        "Fn::If": ["WorkerHasReservedConcurrency", {"Ref": "WorkerReservedConcurrency"}, {"Ref": "AWS::NoValue"}]
    }
    condition = str(template["Conditions"]["WorkerHasReservedConcurrency"])
    assert "'0'" in condition and "''" in condition
    assert worker["MemorySize"] == {"Ref": "WorkerMemorySize"} and worker["Timeout"] == {"Ref": "WorkerTimeout"}


def test_image_metadata(template):
    metadata = template["Resources"][image_spec.FUNCTION_ID]["Metadata"]
    assert metadata["Dockerfile"] == "Dockerfile" and metadata["DockerContext"] == "."
    assert metadata["DockerTag"]
    assert template["Resources"][image_spec.WORKER_ID]["Metadata"] == metadata, "one image for both"


def test_http_routes_and_their_auth(template, function, worker):
    assert {event["Type"] for event in function["Events"].values()} == {"HttpApi"}
    assert {event["Type"] for event in worker["Events"].values()} == {"S3", "SQS"}, "the worker serves no HTTP"
    routes = {
        (event["Properties"]["Method"].lower(), event["Properties"]["Path"])
        for event in function["Events"].values()
        if event["Type"] == "HttpApi"
    }
    for route in [("post", "/segment"), ("post", "/segmentapi"), ("get", "/"), ("get", "/healthz")]:
        assert route in routes
    assert {("get", "/docs"), ("get", "/openapi.json")} <= routes
    body = template["Resources"]["HttpApi"]["Properties"]["DefinitionBody"]
    documented = {(method, path) for path, item in body["paths"].items() for method in item}
    assert documented == routes, "every route carries the ApiAuth choice"
    for path, item in body["paths"].items():
        for operation in item.values():
            assert "security" in operation, path


def test_s3_event_on_the_template_bucket_with_prefix_filter(worker):
    (event,) = [e["Properties"] for e in worker["Events"].values() if e["Type"] == "S3"]
    assert event["Bucket"] == {"Ref": "InputBucket"}
    (rule,) = event["Filter"]["S3Key"]["Rules"]
    assert rule == {"Name": "prefix", "Value": {"Ref": "InputPrefix"}}


def test_least_privilege_policies_without_circular_dependency(template, function, worker):
    bucket_name = template["Resources"]["InputBucket"]["Properties"]["BucketName"]["Fn::Sub"]
    arn = "arn:${AWS::Partition}:s3:::" + bucket_name
    # The HTTP function reads what an s3_uri may name; for jobs it signs uploads under InputPrefix/jobs/
    # only, writes each job's record and reads the jobs' results; it may list nothing (ids are capabilities).
    assert [(s["Effect"], s["Sid"], s["Action"], s["Resource"]) for s in statements(function)] == [
        (
            "Allow",
            "ReadInputPrefix",
            "s3:GetObject",
            {
                "Fn::If": [
                    "ReadsS3Uri",
                    {"Fn::Sub": arn + "/${InputPrefix}*"},
                    {"Fn::Sub": arn + "/${InputPrefix}jobs/*"},
                ]
            },
        ),
        ("Allow", "SignJobUploads", "s3:PutObject", {"Fn::Sub": arn + "/${InputPrefix}jobs/*"}),
        ("Allow", "WriteJobRecords", "s3:PutObject", {"Fn::Sub": arn + "/${OutputPrefix}jobs/*/job.record"}),
        ("Allow", "ReadJobResults", "s3:GetObject", {"Fn::Sub": arn + "/${OutputPrefix}jobs/*"}),
    ]
    assert "EventInvokeConfig" not in function, "the HTTP function has no failure queue"
    assert all(s["Effect"] == "Allow" for s in statements(worker))
    by_sid = {s["Sid"]: (s["Action"], s["Resource"]) for s in statements(worker)}
    backfill = "arn:${AWS::Partition}:s3:::${BackfillBucket}"
    video_machine = "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:stateMachine:${AWS::StackName}-video"
    video_executions = (
        "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:execution:${AWS::StackName}-video:*"
    )
    # Reads may name a version (Batch Operations); deletes (an earlier attempt's outputs beside the latest
    # outcome) only results and overlays under the output prefix, never a job record or anything else.
    outputs = [{"Fn::Sub": arn + "/${OutputPrefix}*.json"}, {"Fn::Sub": arn + "/${OutputPrefix}*.png"}]
    backfill_outputs = [
        {"Fn::Sub": backfill + "/${OutputPrefix}*.json"},
        {"Fn::Sub": backfill + "/${OutputPrefix}*.png"},
    ]
    assert by_sid == {
        "ReadInputPrefix": (["s3:GetObject", "s3:GetObjectVersion"], {"Fn::Sub": arn + "/${InputPrefix}*"}),
        "WriteOutputPrefix": ("s3:PutObject", {"Fn::Sub": arn + "/${OutputPrefix}*"}),
        "ReplaceOutputs": ("s3:DeleteObject", outputs),
        "SendToFailureQueue": ("sqs:SendMessage", {"Fn::GetAtt": ["FailureQueue", "Arn"]}),
        "ReadBackfillPrefix": (["s3:GetObject", "s3:GetObjectVersion"], {"Fn::Sub": backfill + "/${BackfillPrefix}*"}),
        "WriteBackfillOutputPrefix": ("s3:PutObject", {"Fn::Sub": backfill + "/${OutputPrefix}*"}),
        "ReplaceBackfillOutputs": ("s3:DeleteObject", backfill_outputs),
        # Video: the runs' plan, chunks and error records under the output prefix, and the one state machine,
        # named (not referenced: a Ref of it from the worker it invokes would be a cycle).
        "ReadVideoRuns": (
            "s3:GetObject",
            [{"Fn::Sub": arn + "/${OutputPrefix}*.video/*"}, {"Fn::Sub": arn + "/${OutputPrefix}*.error.json"}],
        ),
        "StartVideoExecutions": ("states:StartExecution", {"Fn::Sub": video_machine}),
        "SeeVideoExecutions": ("states:DescribeExecution", {"Fn::Sub": video_executions}),
    }
    conditional = [s["Fn::If"][0] for policy in worker["Policies"] for s in policy["Statement"] if "Fn::If" in s]
    assert conditional == ["HasBackfillBucket"] * 3, "no backfill bucket, no grant"
    assert template["Conditions"]["HasBackfillBucket"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "BackfillBucket"}, ""]}]}
    for props in (function, worker):
        assert "InputBucket" not in str(props["Policies"]), "a Ref/GetAtt of the bucket here is a cycle"


def test_batch_operations_role_invokes_the_worker_and_writes_only_under_the_output_prefix(template):
    role = template["Resources"]["BatchOperationsRole"]["Properties"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "batchoperations.s3.amazonaws.com"}
    assert trust["Action"] == "sts:AssumeRole"
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
    (policy,) = role["Policies"]
    by_sid = {s["Sid"]: (s["Action"], s["Resource"]) for s in policy["PolicyDocument"]["Statement"]}
    bucket = "arn:${AWS::Partition}:s3:::${AWS::StackName}-${AWS::AccountId}-uploads"
    # the "live" alias: the published version SnapStart applies to
    assert by_sid["InvokeWorker"] == ("lambda:InvokeFunction", {"Ref": "WorkerFunction.Alias"})
    assert by_sid["ManifestAndReport"] == (
        ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject"],
        {"Fn::Sub": bucket + "/${OutputPrefix}batch-operations/*"},
    )
    assert by_sid["ListSourceBuckets"][0] == "s3:ListBucket"
    assert by_sid["ListSourceBuckets"][1][0] == {"Fn::Sub": bucket}
    assert by_sid["ListSourceBuckets"][1][1]["Fn::If"][0] == "HasBackfillBucket"
    assert by_sid["BucketLocation"] == ("s3:GetBucketLocation", {"Fn::Sub": bucket})
    assert set(by_sid) == {"InvokeWorker", "ManifestAndReport", "ListSourceBuckets", "BucketLocation"}


def test_bucket_is_private_encrypted_and_tls_only(template):
    bucket = template["Resources"]["InputBucket"]["Properties"]
    assert bucket["BucketName"] == {"Fn::Sub": "${AWS::StackName}-${AWS::AccountId}-uploads"}
    block = bucket["PublicAccessBlockConfiguration"]
    assert all(
        block[key] is True
        for key in ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets")
    )
    (rule,) = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
    policy = template["Resources"]["InputBucketPolicy"]["Properties"]
    assert policy["Bucket"] == {"Ref": "InputBucket"}
    (deny,) = [s for s in policy["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert deny["Action"] == "s3:*" and deny["Principal"] == "*"
    assert {"Fn::GetAtt": ["InputBucket", "Arn"]} in deny["Resource"]
    assert {"Fn::Sub": "${InputBucket.Arn}/*"} in deny["Resource"]


def test_jobs_bucket_cors_retention_and_settings(template, function, worker):
    bucket = template["Resources"]["InputBucket"]["Properties"]
    (cors,) = bucket["CorsConfiguration"]["CorsRules"]
    assert cors["AllowedMethods"] == ["POST", "GET"], "browsers POST job uploads and GET large results"
    api_origin = {"Fn::Sub": "https://${HttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}"}
    condition, with_extra, api_only = cors["AllowedOrigins"]["Fn::If"]
    assert condition == "HasUploadAllowedOrigins" and api_only == [api_origin]
    assert with_extra["Fn::Split"][1]["Fn::Sub"][1] == {"Extra": {"Ref": "UploadAllowedOrigins"}}
    assert "*" not in str(cors["AllowedOrigins"])
    rules = {rule["Id"]: rule for rule in bucket["LifecycleConfiguration"]["Rules"]}
    for rule_id, prefix in (("ExpireJobUploads", "${InputPrefix}jobs/"), ("ExpireJobResults", "${OutputPrefix}jobs/")):
        assert rules[rule_id]["Prefix"] == {"Fn::Sub": prefix}
        assert rules[rule_id]["ExpirationInDays"] == {"Ref": "JobRetentionDays"}
    assert template["Parameters"]["JobRetentionDays"]["Default"] == 7
    environment = function["Environment"]["Variables"]
    assert environment["SEG_JOBS_BUCKET"] == bucket["BucketName"]
    max_bytes = template["Parameters"]["MaxImageBytes"]["Default"]
    assert max_bytes >= 15 * 1024 * 1024, "a 15 MB phone photo fits a job"
    for props in (function, worker):
        assert props["Environment"]["Variables"]["SEG_MAX_IMAGE_BYTES"] == {"Ref": "MaxImageBytes"}
    assert "SEG_JOBS_BUCKET" not in worker["Environment"]["Variables"], "the worker signs nothing"


def test_failures_go_to_an_encrypted_queue_that_the_worker_reads_back(template, function, worker):
    config = worker["EventInvokeConfig"]
    assert config["MaximumRetryAttempts"] == {"Ref": "MaximumRetryAttempts"}
    assert config["MaximumEventAgeInSeconds"] == {"Ref": "MaximumEventAgeInSeconds"}
    assert config["DestinationConfig"]["OnFailure"] == {
        "Type": "SQS",
        "Destination": {"Fn::GetAtt": ["FailureQueue", "Arn"]},
    }
    resources = template["Resources"]
    for name in ("FailureQueue", "FailureDeadLetterQueue"):
        queue = resources[name]["Properties"]
        assert queue.get("SqsManagedSseEnabled") is True or "KmsMasterKeyId" in queue
    # Every job ends: the failure queue is an event source of the worker, which turns each record into the
    # upload's .error.json, reporting per message; a record it cannot handle goes aside after 5 tries.
    (event,) = [e["Properties"] for e in worker["Events"].values() if e["Type"] == "SQS"]
    assert event["Queue"] == {"Fn::GetAtt": ["FailureQueue", "Arn"]}
    assert event["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    queue = resources["FailureQueue"]["Properties"]
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": ["FailureDeadLetterQueue", "Arn"]},
        "maxReceiveCount": 5,
    }
    largest_timeout = template["Parameters"]["WorkerTimeout"]["MaxValue"]
    assert queue["VisibilityTimeout"] >= largest_timeout, "Lambda refuses a queue that hides messages for less"
    # Both functions know the worker's retry window as deployed (the stalled backstop, the error messages).
    window = {
        "SEG_WORKER_TIMEOUT_S": {"Ref": "WorkerTimeout"},
        "SEG_WORKER_MAX_RETRIES": {"Ref": "MaximumRetryAttempts"},
        "SEG_WORKER_MAX_EVENT_AGE_S": {"Ref": "MaximumEventAgeInSeconds"},
    }
    for props in (function, worker):
        assert {name: props["Environment"]["Variables"][name] for name in window} == window
    settings = Settings()
    for name, field_name in (
        ("WorkerTimeout", "worker_timeout_s"),
        ("MaximumRetryAttempts", "worker_max_retries"),
        ("MaximumEventAgeInSeconds", "worker_max_event_age_s"),
    ):
        assert template["Parameters"][name]["Default"] == getattr(settings, field_name), "the defaults agree"


def test_outputs(template):
    outputs = template["Outputs"]
    assert "execute-api" in outputs["ApiUrl"]["Value"]["Fn::Sub"]
    assert outputs["InputBucketName"]["Value"] == {"Ref": "InputBucket"}
    assert outputs["WorkerFunctionArn"]["Value"] == {"Ref": "WorkerFunction.Alias"}
    assert outputs["BatchOperationsRoleArn"]["Value"] == {"Fn::GetAtt": ["BatchOperationsRole", "Arn"]}


# --- infra/bake_model.py (the Dockerfile's model stage) -------------------------------------------


def release_weights(tmp_path: Path, content: bytes = b"weights", backbone: str = "resnet50") -> tuple[Path, str]:
    path = tmp_path / catalogue.weights(backbone).file
    path.write_bytes(content)
    return path, hashlib.sha256(content).hexdigest()


def test_bake_copies_a_context_file_and_checks_it(tmp_path):
    source, digest = release_weights(tmp_path)
    out = tmp_path / "out"
    assert bake_model.bake("resnet50", out, source=source, url="https://unused.invalid/x", sha256=digest) == digest
    dest = out / catalogue.weights("resnet50").file
    assert dest.read_bytes() == b"weights" and (dest.stat().st_mode & 0o777) == 0o644


def test_bake_takes_the_release_file_from_the_context_by_its_catalogue_name(tmp_path):
    _, digest = release_weights(tmp_path, b"r101", "resnet101")
    unused = "https://unused.invalid/x"
    assert bake_model.bake("resnet101", tmp_path / "out", context=tmp_path, url=unused, sha256=digest) == digest
    assert (tmp_path / "out" / "pointrend_resnet101.pkl").read_bytes() == b"r101"


def test_bake_fails_on_mismatch_and_installs_nothing(tmp_path):
    source, _ = release_weights(tmp_path)
    out = tmp_path / "out"
    with pytest.raises(SystemExit, match="sha256 mismatch"):
        bake_model.bake("resnet50", out, source=source, url="https://unused.invalid/x", sha256="0" * 64)
    assert not list(out.iterdir())


def test_bake_reads_the_pin_file_and_downloads_when_no_source(tmp_path):
    remote, digest = release_weights(tmp_path)
    pin = tmp_path / "model.sha256"
    pin.write_text(f"{'1' * 64}  pointrend_resnet101.pkl\n{digest}  pointrend_resnet50.pkl\n")
    out = tmp_path / "out"
    bake_model.bake("resnet50", out, source=tmp_path / "absent.pkl", url=remote.as_uri(), pin_file=pin)
    assert (out / "pointrend_resnet50.pkl").read_bytes() == b"weights"
    with pytest.raises(SystemExit, match="sha256 mismatch"):  # each release file has its own pin
        bake_model.bake("resnet101", out, url=remote.as_uri(), pin_file=pin)
    pin.write_text(f"{digest}  pointrend_resnet50.pkl\n")
    with pytest.raises(SystemExit, match=r"no sha256 pin for pointrend_resnet101\.pkl"):
        bake_model.bake("resnet101", out, url=remote.as_uri(), pin_file=pin)


def test_bake_without_any_pin_fails(tmp_path):
    source, _ = release_weights(tmp_path)
    with pytest.raises(SystemExit, match="no sha256 pin"):
        bake_model.bake("resnet50", tmp_path / "o", source=source, pin_file=tmp_path / "missing.sha256")


def test_sam_local_template_runs_the_built_image_with_the_template_settings(tmp_path):
    """What `make image-smoke` hands `sam local invoke` / `start-api`: the built image, no `sam build`."""
    out = tmp_path / "sam-local.yaml"
    assert sam_local_template.main(["pointrend-lambda:smoke", str(out), "SEG_CONFIDENCE=0.0"]) == 0
    function = image_spec.load_template(out)["Resources"][image_spec.FUNCTION_ID]
    assert function["Metadata"] == {"SkipBuild": True}
    props = function["Properties"]
    assert (props["PackageType"], props["ImageUri"]) == ("Image", "pointrend-lambda:smoke")
    assert props["ImageConfig"]["Command"] == image_spec.dockerfile_exec_form(DOCKERFILE)[1]
    expected = image_spec.function_spec().environment
    assert props["Environment"]["Variables"] == {**expected, "SEG_CONFIDENCE": "0.0"}
    result = run_tool(tool("cfn-lint"), str(out))
    assert result.returncode == 0, result.stdout + result.stderr
