"""template.yaml's operations part: caps (API throttling, reserved and provisioned concurrency), alarms and
their topic, the dashboard of handler/core/metrics.py's metrics, log groups with a retention, optional tracing;
and that it stays lint-clean with every optional parameter off (the defaults) and all on."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO

from handler.core import metrics
from infra import image_spec

TEMPLATE = REPO / "template.yaml"
BIN = Path(sys.executable).parent
ALL_ON = {
    "ReservedConcurrency": "20",
    "ProvisionedConcurrency": "2",
    "SnapStart": "None",  # provisioned concurrency needs SnapStart off (the rule below)
    "WorkerReservedConcurrency": "10",
    "AlarmEmail": "ops@example.com",
    "Tracing": "Active",
    "LogRetentionDays": "90",
}
ALARMS = {
    # alarm: (namespace, metric, the resource its dimension names)
    "HttpErrorsAlarm": ("AWS/Lambda", "Errors", "SegmentFunction"),
    "WorkerErrorsAlarm": ("AWS/Lambda", "Errors", "WorkerFunction"),
    "HttpThrottlesAlarm": ("AWS/Lambda", "Throttles", "SegmentFunction"),
    "WorkerThrottlesAlarm": ("AWS/Lambda", "Throttles", "WorkerFunction"),
    "HttpDurationAlarm": ("AWS/Lambda", "Duration", "SegmentFunction"),
    "WorkerDurationAlarm": ("AWS/Lambda", "Duration", "WorkerFunction"),
    "FailureQueueAlarm": ("AWS/SQS", "NumberOfMessagesSent", "FailureQueue"),
    "FailureDeadLetterAlarm": ("AWS/SQS", "ApproximateNumberOfMessagesVisible", "FailureDeadLetterQueue"),
    "HttpApplicationErrorsAlarm": ("PointRend", "Errors", "http"),  # the service's own metric: entry_point
    "Api5xxAlarm": ("AWS/ApiGateway", "5xx", "HttpApi"),
    "WorkerConcurrencyAlarm": ("AWS/Lambda", "ConcurrentExecutions", "WorkerFunction"),
}
METRIC_NAMES = (
    "ImagesSegmented",
    "ObjectsFound",
    "TotalLatency",
    "ModelLatency",
    "DecodeLatency",
    "ImageMegapixels",
    "Errors",
    "Refused",
    "ColdStart",
    "Restores",
)


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return image_spec.load_template(TEMPLATE)


@pytest.fixture(scope="module")
def resources(template) -> dict[str, Any]:
    return template["Resources"]


def with_defaults(text: str, values: dict[str, str]) -> str:
    """template.yaml's text with these parameters' defaults changed: what linters see for a deploy with them."""
    for name, value in values.items():
        block = re.search(rf"(?m)^  {name}:\n(?:    .*\n)+", text)
        assert block, name
        (default,) = re.findall(r"(?m)^    Default: (.*)$", block.group(0))
        quoted = f'"{value}"' if default.startswith('"') else value  # as the original: Number or String
        changed = block.group(0).replace(f"    Default: {default}\n", f"    Default: {quoted}\n")
        text = text.replace(block.group(0), changed)
    return text


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    env = {"SAM_CLI_TELEMETRY": "0", "AWS_DEFAULT_REGION": "us-east-1", "PATH": str(BIN)}
    return subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)


# --- caps --------------------------------------------------------------------------------------------


def test_cap_parameters_have_safe_defaults(template):
    parameters = template["Parameters"]
    assert (parameters["ApiThrottlingRateLimit"]["Default"], parameters["ApiThrottlingBurstLimit"]["Default"]) == (
        5,
        10,
    )
    assert parameters["ReservedConcurrency"]["Default"] == ""  # none: a new account's quota of 50 cannot reserve
    assert "50" in parameters["ReservedConcurrency"]["Description"]
    assert re.fullmatch(parameters["ReservedConcurrency"]["AllowedPattern"], "")
    assert parameters["ProvisionedConcurrency"]["Default"] == 0
    assert (parameters["LogRetentionDays"]["Default"], parameters["Tracing"]["Default"]) == (30, "Disabled")
    assert parameters["AlarmEmail"]["Default"] == ""


def test_http_api_throttles_every_route(resources):
    settings = resources["HttpApi"]["Properties"]["DefaultRouteSettings"]
    assert settings == {
        "ThrottlingRateLimit": {"Ref": "ApiThrottlingRateLimit"},
        "ThrottlingBurstLimit": {"Ref": "ApiThrottlingBurstLimit"},
    }


def test_reserved_concurrency_is_none_when_empty_or_zero(template, resources):
    none = {
        "Fn::Or": [
            {"Fn::Equals": [{"Ref": "ReservedConcurrency"}, ""]},
            {"Fn::Equals": [{"Ref": "ReservedConcurrency"}, "0"]},
        ]
    }
    assert template["Conditions"]["HasReservedConcurrency"] == {"Fn::Not": [none]}
    assert resources["SegmentFunction"]["Properties"]["ReservedConcurrentExecutions"] == {
        "Fn::If": ["HasReservedConcurrency", {"Ref": "ReservedConcurrency"}, {"Ref": "AWS::NoValue"}]
    }


def test_provisioned_concurrency_is_optional_on_the_live_alias(template, resources):
    function = resources["SegmentFunction"]["Properties"]
    assert function["AutoPublishAlias"] == "live"
    assert function["ProvisionedConcurrencyConfig"] == {
        "Fn::If": [
            "HasProvisionedConcurrency",
            {"ProvisionedConcurrentExecutions": {"Ref": "ProvisionedConcurrency"}},
            {"Ref": "AWS::NoValue"},
        ]
    }
    assert template["Conditions"]["HasProvisionedConcurrency"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "ProvisionedConcurrency"}, 0]}]
    }


# --- SnapStart --------------------------------------------------------------------------------------


def test_snapstart_is_on_by_default_for_both_functions_through_the_live_alias(template, resources):
    assert template["Parameters"]["SnapStart"]["Default"] == "PublishedVersions"
    assert template["Parameters"]["SnapStart"]["AllowedValues"] == ["PublishedVersions", "None"]
    for function in ("SegmentFunction", "WorkerFunction"):
        properties = resources[function]["Properties"]
        assert properties["SnapStart"] == {"ApplyOn": {"Ref": "SnapStart"}}
        assert properties["AutoPublishAlias"] == "live"  # SnapStart applies to published versions only


def test_snapstart_and_provisioned_concurrency_exclude_each_other(template):
    rule = template["Rules"]["SnapStartExcludesProvisionedConcurrency"]
    assert rule["RuleCondition"] == {"Fn::Equals": [{"Ref": "SnapStart"}, "PublishedVersions"]}
    assert rule["Assertions"][0]["Assert"] == {"Fn::Equals": [{"Ref": "ProvisionedConcurrency"}, "0"]}


def test_functions_stay_inside_snapstart_limits(resources):
    # SnapStart supports neither EFS nor more than 512 MB of ephemeral storage (Lambda's default is 512).
    for function in ("SegmentFunction", "WorkerFunction"):
        properties = resources[function]["Properties"]
        assert "FileSystemConfigs" not in properties
        assert properties.get("EphemeralStorage", {"Size": 512})["Size"] <= 512


def test_batch_operations_and_its_output_invoke_the_workers_live_alias(template, resources):
    role = resources["BatchOperationsRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    invoke = next(statement for statement in role if statement["Sid"] == "InvokeWorker")
    assert invoke["Resource"] == {"Ref": "WorkerFunction.Alias"}
    assert template["Outputs"]["WorkerFunctionArn"]["Value"] == {"Ref": "WorkerFunction.Alias"}


def test_each_function_imports_only_the_side_it_serves(resources):
    serves = {
        function: resources[function]["Properties"]["Environment"]["Variables"]["SEG_SERVES"]
        for function in ("SegmentFunction", "WorkerFunction")
    }
    assert serves == {"SegmentFunction": "http", "WorkerFunction": "s3"}


def test_tracing_is_a_parameter_on_both_functions(resources):
    # SAM resolves the parameter: Disabled adds neither a TracingConfig nor the X-Ray policy.
    for function in ("SegmentFunction", "WorkerFunction"):
        assert resources[function]["Properties"]["Tracing"] == {"Ref": "Tracing"}


# --- logs, alarms, dashboard -------------------------------------------------------------------------


def test_log_groups_with_retention_for_both_functions(resources):
    for function in ("SegmentFunction", "WorkerFunction"):
        group = resources[f"{function}LogGroup"]
        assert group["Type"] == "AWS::Logs::LogGroup"
        assert group["Properties"] == {
            "LogGroupName": {"Fn::Sub": f"/aws/lambda/${{{function}}}"},
            "RetentionInDays": {"Ref": "LogRetentionDays"},
        }
        assert "DeletionPolicy" not in group  # deleting the stack deletes the logs


def test_alarm_topic_with_an_optional_email_subscription(resources):
    assert resources["AlarmTopic"]["Type"] == "AWS::SNS::Topic"
    subscription = resources["AlarmEmailSubscription"]
    assert subscription["Condition"] == "HasAlarmEmail"
    assert subscription["Properties"] == {
        "TopicArn": {"Ref": "AlarmTopic"},
        "Protocol": "email",
        "Endpoint": {"Ref": "AlarmEmail"},
    }


def alarm_metric(properties: dict[str, Any]) -> tuple[str, str, Any]:
    """(namespace, metric name, the first dimension's value) of a plain or a metric-math alarm."""
    if "Metrics" in properties:
        stat = next(m for m in properties["Metrics"] if "MetricStat" in m)["MetricStat"]["Metric"]
    else:
        stat = properties
    return stat["Namespace"], stat["MetricName"], stat["Dimensions"][0]["Value"]


@pytest.mark.parametrize("alarm", sorted(ALARMS))
def test_each_alarm_watches_its_resource_and_notifies_the_topic(resources, alarm):
    namespace, metric, resource = ALARMS[alarm]
    properties = resources[alarm]["Properties"]
    queue = resource.endswith("Queue")
    reference = {"Fn::GetAtt": [resource, "QueueName"]} if queue else {"Ref": resource}
    reference = resource if namespace == metrics.NAMESPACE else reference
    assert alarm_metric(properties) == (namespace, metric, reference)
    assert properties["AlarmActions"] == [{"Ref": "AlarmTopic"}] == properties["OKActions"]
    assert properties["TreatMissingData"] == "notBreaching"
    assert f"docs/operations.md#{alarm.lower()}" in properties["AlarmDescription"]
    assert properties["Threshold"] > 0


@pytest.mark.parametrize(
    ("alarm", "timeout"), [("HttpDurationAlarm", "Timeout"), ("WorkerDurationAlarm", "WorkerTimeout")]
)
def test_duration_alarms_follow_the_timeout_parameter(resources, alarm, timeout):
    properties = resources[alarm]["Properties"]
    (share,) = [m for m in properties["Metrics"] if m.get("ReturnData")]
    assert share["Expression"] == {"Fn::Sub": f"duration / (${{{timeout}}} * 1000)"}
    assert properties["Threshold"] == 0.9


def test_application_errors_alarm_watches_the_500s_mangum_answers(resources):
    # An unhandled exception becomes a 500 answer and a successful invocation: Lambda's Errors never sees it.
    properties = resources["HttpApplicationErrorsAlarm"]["Properties"]
    assert properties["Dimensions"] == [
        {"Name": "entry_point", "Value": "http"},
        {"Name": "error_code", "Value": "internal_error"},
        {"Name": "service", "Value": metrics.SERVICE},
    ]
    assert (properties["Statistic"], properties["Threshold"]) == ("Sum", 1)


def test_the_errors_metric_has_the_alarms_dimensions_when_a_request_fails(capsys):
    # What handler/core/metrics.py prints for one 500 is what HttpApplicationErrorsAlarm watches.
    with metrics.scope():
        metrics.record_error("http", "internal_error")
    (line,) = [json.loads(text) for text in capsys.readouterr().out.splitlines() if "Errors" in text]
    (directive,) = line["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "PointRend" and sorted(directive["Dimensions"][0]) == [
        "entry_point",
        "error_code",
        "service",
    ]
    assert (line["entry_point"], line["error_code"], line["service"]) == ("http", "internal_error", metrics.SERVICE)
    assert line["Errors"] in (1, 1.0, [1.0])


def test_worker_concurrency_alarm_follows_its_reservation(resources):
    properties = resources["WorkerConcurrencyAlarm"]["Properties"]
    (share,) = [m for m in properties["Metrics"] if m.get("ReturnData")]
    assert share["Expression"] == {
        "Fn::If": ["WorkerHasReservedConcurrency", {"Fn::Sub": "conc / ${WorkerReservedConcurrency}"}, "conc / 100"]
    }
    assert (properties["Threshold"], properties["EvaluationPeriods"]) == (0.9, 3)


def test_failure_queue_alarms_fire_on_one_message(resources):
    """One upload failed for good (the worker reads the queue, so its messages never stay: count those sent),
    and one failure record the worker could not handle (it stays in the dead-letter queue)."""
    for alarm, statistic in (("FailureQueueAlarm", "Sum"), ("FailureDeadLetterAlarm", "Maximum")):
        properties = resources[alarm]["Properties"]
        assert (properties["Threshold"], properties["Statistic"]) == (1, statistic)


def test_alarm_runbook_sections_exist():
    headings = re.findall(r"(?m)^#+ (.+)$", (REPO / "docs" / "operations.md").read_text())
    anchors = {re.sub(r"[^a-z0-9 -]", "", heading.lower()).replace(" ", "-") for heading in headings}
    assert {alarm.lower() for alarm in ALARMS} <= anchors


def test_dashboard_shows_the_service_metrics_and_every_alarm(resources):
    body = resources["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    dashboard = json.loads(re.sub(r"\$\{[^}]+\}", "X", body))
    text = json.dumps(dashboard)
    assert f'"{metrics.NAMESPACE}"' in text and f'"service", "{metrics.SERVICE}"' in text
    for name in METRIC_NAMES:
        assert f'"{name}"' in text or f'MetricName=\\"{name}\\"' in text, name
    for entry_point in ("http", "s3", "jobs", "batch"):
        assert f'"{entry_point}"' in text
    (alarm_widget,) = [w for w in dashboard["widgets"] if w["type"] == "alarm"]
    assert len(alarm_widget["properties"]["alarms"]) == len(ALARMS)
    assert {f"${{{alarm}.Arn}}" for alarm in ALARMS} <= set(re.findall(r"\$\{[^}]+\}", body))


def test_outputs_name_the_topic_and_the_dashboard(template):
    assert template["Outputs"]["AlarmTopicArn"]["Value"] == {"Ref": "AlarmTopic"}
    assert "dashboards:name=${Dashboard}" in template["Outputs"]["DashboardUrl"]["Value"]["Fn::Sub"]


# --- lint-clean with the optional parameters all off (the defaults) and all on ------------------------


def test_with_defaults_changes_exactly_the_named_defaults():
    text = with_defaults(TEMPLATE.read_text(), {"Tracing": "Active"})
    assert text.count("Default: Active") == 1 and text.count("Default: Disabled") == 0


COMBINATIONS = {"none": {}, "all_on": ALL_ON, "snapstart_off": {"SnapStart": "None"}}


@pytest.mark.slow
@pytest.mark.parametrize("combination", sorted(COMBINATIONS))
def test_lint_clean_with_optional_parameters(tmp_path, combination):
    path = tmp_path / "template.yaml"
    path.write_text(with_defaults(TEMPLATE.read_text(), COMBINATIONS[combination]))
    lint = run(str(BIN / "cfn-lint"), str(path))
    assert lint.returncode == 0, lint.stdout + lint.stderr
    sam = run(str(BIN / "sam"), "validate", "--lint", "--template-file", str(path))
    assert sam.returncode == 0 and "is a valid SAM Template" in sam.stdout + sam.stderr, sam.stdout + sam.stderr
