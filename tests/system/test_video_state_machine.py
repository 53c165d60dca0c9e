"""The video state machine's definition file: what template.yaml deploys, checked by cfn-lint's ASL rule.

cfn-lint's E3601 reads ``AWS::StepFunctions::StateMachine`` definitions only, not a SAM ``DefinitionUri`` file,
so the same file (template.yaml's substitutions applied, as Step Functions applies them) is linted as the
``Definition`` of a plain state machine.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from infra.moto_sfn import definition

REPO = Path(__file__).resolve().parents[2]
BIN = REPO / ".venv" / "bin"
WORKER = "arn:aws:lambda:us-east-1:123456789012:function:worker:live"
SUBSTITUTIONS = {"WorkerFunctionArn": WORKER, "MaxConcurrency": "10"}


class _Loader(yaml.SafeLoader):
    """template.yaml with its short-form intrinsics (!Ref, !Sub, ...) read as plain tags."""


_Loader.add_multi_constructor("!", lambda loader, suffix, node: None)


def template() -> dict:
    return yaml.load((REPO / "template.yaml").read_text(encoding="utf-8"), Loader=_Loader)  # noqa: S506


def lint(tmp_path: Path, states: dict) -> subprocess.CompletedProcess[str]:
    plain = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Resources": {
            "VideoStateMachine": {
                "Type": "AWS::StepFunctions::StateMachine",
                "Properties": {"RoleArn": "arn:aws:iam::123456789012:role/video", "Definition": states},
            }
        },
    }
    path = tmp_path / "plain.json"
    path.write_text(json.dumps(plain), encoding="utf-8")
    return subprocess.run(
        [str(BIN / "cfn-lint"), str(path)], capture_output=True, text=True, timeout=300, check=False, cwd=REPO
    )


def test_template_deploys_the_file_with_every_substitution():
    machine = template()["Resources"]["VideoStateMachine"]["Properties"]
    assert machine["DefinitionUri"] == "infra/video_state_machine.asl.json"
    assert set(machine["DefinitionSubstitutions"]) == set(SUBSTITUTIONS)
    definition(SUBSTITUTIONS)  # every placeholder is one of them, and the result is JSON


@pytest.mark.slow
def test_definition_passes_cfn_lint_asl_rule(tmp_path):
    result = lint(tmp_path, json.loads(definition(SUBSTITUTIONS)))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_the_asl_rule_does_check_it(tmp_path):
    """A broken definition (a Task without its Resource, a MaxConcurrency that is not a number) fails the same
    lint: the check is real."""
    states = json.loads(definition(SUBSTITUTIONS))
    del states["States"]["Assemble"]["Resource"]
    states["States"]["Chunks"]["MaxConcurrency"] = "ten"
    result = lint(tmp_path, states)
    assert result.returncode != 0 and "E3601" in result.stdout, result.stdout


def test_distributed_map_keeps_no_tolerated_failures():
    chunks = json.loads(definition(SUBSTITUTIONS))["States"]["Chunks"]
    assert chunks["ItemProcessor"]["ProcessorConfig"]["Mode"] == "DISTRIBUTED"
    assert chunks["MaxConcurrency"] == 10 and "ItemReader" in chunks
    assert not any(name.startswith("Tolerated") for name in chunks) and "ItemBatcher" not in chunks
