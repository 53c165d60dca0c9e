"""template.yaml's conditions evaluated as CloudFormation would, for the parameter values that matter:
nested input/output prefixes fail the deployment exactly when the functions would refuse them at init."""

from __future__ import annotations

import re
from typing import Any

import pytest
from conftest import REPO

from handler.core.settings import Settings, prefix_conflicts
from infra import image_spec

TEMPLATE = image_spec.load_template(REPO / "template.yaml")


def evaluate(node: Any, parameters: dict[str, str]) -> Any:
    """The few intrinsic functions the template's conditions use, as CloudFormation defines them."""
    if not isinstance(node, dict):
        return [evaluate(item, parameters) for item in node] if isinstance(node, list) else node
    ((function, argument),) = node.items()
    if function == "Ref":
        return parameters[argument] if argument in parameters else TEMPLATE["Parameters"][argument]["Default"]
    if function == "Condition":
        return evaluate(TEMPLATE["Conditions"][argument], parameters)
    value = evaluate(argument, parameters)
    if function == "Fn::Sub":
        return re.sub(r"\$\{([A-Za-z0-9:]+)\}", lambda match: str(evaluate({"Ref": match[1]}, parameters)), value)
    operations = {
        "Fn::Equals": lambda pair: str(pair[0]) == str(pair[1]),
        "Fn::Not": lambda single: not single[0],
        "Fn::Or": any,
        "Fn::And": all,
        "Fn::Split": lambda pair: pair[1].split(pair[0]),
        "Fn::Select": lambda pair: pair[1][int(pair[0])],
        "Fn::Join": lambda pair: pair[0].join(pair[1]),
    }
    return operations[function](value)


def condition(name: str, **parameters: str) -> bool:
    return evaluate(TEMPLATE["Conditions"][name], parameters)


PREFIX_PAIRS = [
    ("uploads/", "results/"),
    ("results/in/", "results/"),
    ("uploads/", "uploads/results/"),
    ("a/b/c/", "a/b/"),
    ("a/b/", "a/b/c/d/"),
    ("a/b/c/d/", "a/b/c/d/e/"),
    ("up/", "uploads/"),  # a shared first letter is not containment
    ("a/b/", "a/bc/"),
    ("x/uploads/", "uploads/"),
    ("same/", "same/"),
]


@pytest.mark.parametrize(("input_prefix", "output_prefix"), PREFIX_PAIRS)
def test_the_template_fails_nested_prefixes_as_the_functions_do(input_prefix, output_prefix):
    nested = condition("PrefixesNested", InputPrefix=input_prefix, OutputPrefix=output_prefix)
    refused = bool(prefix_conflicts(Settings.model_construct(input_prefix=input_prefix, output_prefix=output_prefix)))
    assert nested == refused, (input_prefix, output_prefix)


def test_the_guard_exists_only_under_that_condition():
    resources = TEMPLATE["Resources"]
    guard = resources["PrefixesContainOneAnother"]
    assert guard["Type"] == "AWS::CloudFormation::WaitCondition" and guard["Condition"] == "PrefixesNested"
    assert guard["Properties"]["Handle"] == {"Ref": "PrefixesContainOneAnotherHandle"}
    assert resources["PrefixesContainOneAnotherHandle"]["Condition"] == "PrefixesNested"
    assert not condition("PrefixesNested")  # the defaults deploy
