"""The JSON Schema shipped for the definition format: it is what the format's tables generate, and
the definitions the README and the samples show validate against it."""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

jsonschema = pytest.importorskip("jsonschema")
yaml = pytest.importorskip("yaml")

from liteflow.core._definition_format import SCHEMA_FILE, json_schema

ROOT = Path(__file__).resolve().parents[2]


def shipped() -> Any:
    return json.loads(resources.files("liteflow.core").joinpath(SCHEMA_FILE).read_text(encoding="utf-8"))


def validator() -> Any:
    schema = shipped()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_the_shipped_schema_is_what_the_format_generates() -> None:
    assert shipped() == json_schema(), (
        "the format changed: regenerate the schema with "
        'python -c "from liteflow.core._definition_format import write_schema; write_schema()"'
    )


def readme_yaml_blocks() -> list[str]:
    # The README's "Definitions as data" section, now its own page: the examples before its next section.
    text = (ROOT / "docs" / "definitions-as-data.md").read_text(encoding="utf-8")
    section = text.split("\n## ", 1)[0]
    return re.findall(r"```yaml\n(.*?)```", section, flags=re.DOTALL)


def test_the_readme_and_sample_definitions_validate() -> None:
    blocks = readme_yaml_blocks()
    assert blocks, "docs/definitions-as-data.md has no yaml example before its first section"
    documents = [yaml.safe_load(block) for block in blocks]
    documents.append(yaml.safe_load((ROOT / "samples" / "19-yaml-definition.yaml").read_text(encoding="utf-8")))
    check = validator()
    for document in documents:
        errors = [error.message for error in check.iter_errors(document)]
        assert errors == [], errors


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ({"id": "W", "steps": [{"id": "a", "type": "Noop", "ouputs": {}}]}, "steps/0"),
        ({"id": "W", "steps": [{"id": "a", "type": "while", "do": [[{"id": "b", "type": "Noop"}]]}]}, "steps/0"),
        ({"id": "W", "steps": [{"id": "a", "type": "Noop", "timeout": "soon"}]}, "timeout"),
        ({"id": "W", "steps": []}, "steps"),
        ({"id": "W", "steps": [{"id": "a", "type": "Noop"}], "extra": 1}, "extra"),
    ],
)
def test_the_schema_refuses_what_the_loader_refuses(document: dict[str, Any], problem: str) -> None:
    errors = list(validator().iter_errors(document))
    assert errors
    assert any(problem in "/".join(map(str, error.absolute_path)) or problem in error.message for error in errors)
