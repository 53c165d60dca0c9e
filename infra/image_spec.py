"""What the image and the template say: the Dockerfile's ENTRYPOINT/CMD and a function's spec in template.yaml.

``sam local invoke`` resolves template values the same way (pseudo parameters, parameter defaults, Refs).
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = REPO_ROOT / "Dockerfile"
TEMPLATE = REPO_ROOT / "template.yaml"
FUNCTION_ID = "SegmentFunction"  # the HTTP function: what `python -m infra invoke` runs
WORKER_ID = "WorkerFunction"  # S3 uploads and Batch Operations, same image and CMD

# What `sam local invoke` substitutes for pseudo parameters when it resolves template values.
PSEUDO_PARAMETERS = {
    "AWS::AccountId": "123456789012",
    "AWS::Partition": "aws",
    "AWS::StackName": "local",
    "AWS::StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/local/0",
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::NotificationARNs": "",
}


def _continued_lines(text: str) -> list[str]:
    """Dockerfile instructions, one per item: comments dropped, backslash continuations joined."""
    out: list[str] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if current and line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        out.append(current + line)
        current = ""
    if current:
        out.append(current)
    return out


def dockerfile_exec_form(dockerfile: Path = DOCKERFILE) -> tuple[list[str], list[str]]:
    """The final stage's exec-form ENTRYPOINT and CMD, as lists. Shell forms are refused (ValueError)."""
    entrypoint: list[str] = []
    cmd: list[str] = []
    for line in _continued_lines(Path(dockerfile).read_text()):
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":  # a new stage: nothing of the previous one is inherited
            entrypoint, cmd = [], []
        elif keyword in ("ENTRYPOINT", "CMD"):
            try:
                value = json.loads(rest)
            except json.JSONDecodeError:
                value = None
            if not (isinstance(value, list) and all(isinstance(part, str) for part in value)):
                raise ValueError(f"{dockerfile}: {keyword} must be in exec form (a JSON list), got {rest!r}")
            if keyword == "ENTRYPOINT":
                entrypoint, cmd = value, []  # Docker: setting ENTRYPOINT resets an inherited CMD
            else:
                cmd = value
    return entrypoint, cmd


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that reads CloudFormation short forms (!Ref, !Sub, !GetAtt, ...) as their long form."""


def _cfn_tag(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = tag_suffix if tag_suffix in ("Ref", "Condition") else f"Fn::{tag_suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if tag_suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_CfnLoader.add_multi_constructor("!", _cfn_tag)


def load_template(template: Path = TEMPLATE) -> dict[str, Any]:
    return yaml.load(Path(template).read_text(), Loader=_CfnLoader)  # noqa: S506 (a SafeLoader subclass)


@dataclass
class FunctionSpec:
    """What the template says about the function, with parameters at their defaults (or overrides)."""

    environment: dict[str, str]
    unresolved: dict[str, Any]  # variables whose value needs a deployed resource (left out locally)
    image_command: list[str] | None  # ImageConfig.Command (overrides the Dockerfile's CMD)
    image_entrypoint: list[str] | None  # ImageConfig.EntryPoint (overrides the Dockerfile's ENTRYPOINT)
    memory_size: int | None
    timeout: int | None


class _Unresolved(Exception):
    pass


def _holds(condition: Any, names: dict[str, str], conditions: dict[str, Any]) -> bool:
    """A template condition (Fn::Equals/Not/And/Or, Condition) with parameters at these values."""
    ((key, arg),) = condition.items()
    if key == "Condition":
        return _holds(conditions[arg], names, conditions)
    if key == "Fn::Equals":
        return _resolve(arg[0], names, conditions) == _resolve(arg[1], names, conditions)
    parts = [_holds(part, names, conditions) for part in arg]
    combine = {"Fn::Not": lambda values: not values[0], "Fn::And": all, "Fn::Or": any}
    if key not in combine:
        raise _Unresolved(key)
    return combine[key](parts)


def _resolve(value: Any, names: dict[str, str], conditions: dict[str, Any] | None = None) -> str:
    """Resolve Ref/Sub (and Fn::If, given the template's conditions) against parameter values and pseudo
    parameters; anything else is unresolved."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (str, int, float)):
        return str(value)
    if isinstance(value, dict) and len(value) == 1:
        ((key, arg),) = value.items()
        if key == "Ref" and isinstance(arg, str) and arg in names:
            return names[arg]
        if key == "Fn::If" and conditions is not None and arg[0] in conditions:
            chosen = arg[1] if _holds(conditions[arg[0]], names, conditions) else arg[2]
            return _resolve(chosen, names, conditions)
        if key == "Fn::Sub":
            text, extra = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
            local = dict(names, **{k: _resolve(v, names) for k, v in extra.items()})

            def substitute(match: re.Match[str]) -> str:
                token = match.group(1)
                if token.startswith("!"):
                    return "${" + token[1:] + "}"
                if token not in local:
                    raise _Unresolved(token)
                return local[token]

            return re.sub(r"\$\{([^}]+)\}", substitute, text)
    raise _Unresolved(repr(value))


def function_spec(
    template: Path = TEMPLATE,
    function_id: str = FUNCTION_ID,
    parameters: dict[str, str] | None = None,
    region: str = "us-east-1",
) -> FunctionSpec:
    doc = load_template(template)
    names = dict(PSEUDO_PARAMETERS, **{"AWS::Region": region})
    for name, spec in (doc.get("Parameters") or {}).items():
        if "Default" in spec:
            names[name] = _resolve(spec["Default"], names)
    names.update(parameters or {})
    function = doc["Resources"][function_id]
    props = dict((doc.get("Globals") or {}).get("Function") or {}, **function.get("Properties", {}))
    variables = ((props.get("Environment") or {}).get("Variables")) or {}
    environment: dict[str, str] = {}
    unresolved: dict[str, Any] = {}
    for key, value in variables.items():
        try:
            environment[key] = _resolve(value, names, doc.get("Conditions") or {})
        except _Unresolved:
            unresolved[key] = value

    def number(key: str) -> int | None:
        if key not in props:
            return None
        try:
            return int(_resolve(props[key], names))
        except (_Unresolved, ValueError):
            return None

    image_config = props.get("ImageConfig") or {}
    return FunctionSpec(
        environment=environment,
        unresolved=unresolved,
        image_command=image_config.get("Command"),
        image_entrypoint=image_config.get("EntryPoint"),
        memory_size=number("MemorySize"),
        timeout=number("Timeout"),
    )


def runtime_command(
    dockerfile: Path = DOCKERFILE,
    template: Path | None = TEMPLATE,
    command: list[str] | None = None,
    python: str = sys.executable,
) -> list[str]:
    """ENTRYPOINT + CMD as Lambda runs them: template ImageConfig overrides the Dockerfile, ``command``
    overrides CMD (like arguments after the image in ``docker run``); ``python`` becomes this interpreter."""
    entrypoint, cmd = dockerfile_exec_form(dockerfile)
    if template is not None:
        spec = function_spec(template)
        entrypoint = spec.image_entrypoint or entrypoint
        cmd = spec.image_command or cmd
    if command is not None:
        cmd = list(command)
    argv = [*entrypoint, *cmd]
    if not argv:
        raise ValueError(f"{dockerfile} has neither ENTRYPOINT nor CMD")
    if re.fullmatch(r"python(3(\.\d+)?)?", argv[0]):
        argv[0] = python
    return argv
