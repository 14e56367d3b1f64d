"""The YAML form of a validation suite: readable, hand-editable, and checked on the way in.

Each problem in a document is reported with its path (``expectations[3].max: expected a
number, got 'abc'``), all of them at once, so that one edit fixes a file.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import yaml

from loopwise.data.validation.column_rules import (
    AllowedCategories,
    ColumnPresent,
    ColumnType,
    Finite,
    MeanBetween,
    NotNull,
    Range,
    Unique,
)
from loopwise.data.validation.expectations import Custom, Expectation, RowCount
from loopwise.errors import InvalidArgumentError

__all__ = ["FORMAT_VERSION", "RULES", "expectations_from_yaml", "expectations_to_yaml"]

FORMAT_VERSION = 1
HEADER = (
    "# A Loopwise validation suite: edit freely, then check it with\n"
    "#   loopwise data validate DATA --suite THIS_FILE\n"
    "# Rules and parameters: docs/validation.md\n"
)

RULES: dict[str, type[Expectation]] = {
    cls.rule: cls
    for cls in (
        ColumnPresent,
        ColumnType,
        NotNull,
        Range,
        Finite,
        AllowedCategories,
        Unique,
        MeanBetween,
        RowCount,
    )
}
"""The rules a YAML suite may name (every built-in but ``Custom``)."""


def expectations_to_yaml(expectations: list[Expectation], *, drop_custom: bool = False) -> str:
    """One line per expectation where it fits; parameters left at their default are omitted."""
    custom = [e.name for e in expectations if isinstance(e, Custom)]
    if custom and not drop_custom:
        raise InvalidArgumentError(
            f"Expected a suite of built-in rules, got custom checks {custom!r}: Python functions "
            "cannot be written to YAML. Pass drop_custom=True to leave them out, and add them "
            "again in code after Suite.from_yaml.",
            parameter="drop_custom",
        )
    items = []
    for expectation in expectations:
        if isinstance(expectation, Custom):
            continue
        item: dict[str, Any] = {"rule": expectation.rule}
        for f in dataclasses.fields(expectation):
            value = getattr(expectation, f.name)
            if f.default is dataclasses.MISSING or value != f.default:
                item[f.name] = value
        # `rule` first, then `column`, then the parameters, `severity` last.
        if "column" in item:
            item = {"rule": item.pop("rule"), "column": item.pop("column"), **item}
        if "severity" in item:
            item["severity"] = item.pop("severity")
        items.append(item)
    document = {"version": FORMAT_VERSION, "expectations": items}
    return HEADER + yaml.safe_dump(
        document, sort_keys=False, default_flow_style=None, width=100, allow_unicode=True
    )


def expectations_from_yaml(text: str) -> list[Expectation]:
    """Parse and check a suite document; every problem, with its path, in one error."""
    if not isinstance(text, str):
        raise InvalidArgumentError(
            f"Expected the suite's YAML text as a string, got {type(text).__name__}. To read a "
            "file: Suite.from_yaml(Path('suite.yaml').read_text()).",
            parameter="text",
        )
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise InvalidArgumentError(
            f"Expected a YAML document, got text that YAML cannot parse{where}: {problem}. "
            "Check the indentation and quoting there.",
            parameter="text",
        ) from exc
    problems: list[str] = []
    expectations = _document(document, problems)
    if problems:
        listed = "\n".join(f"  - {p}" for p in problems)
        raise InvalidArgumentError(
            f"The suite YAML has {len(problems)} problem(s):\n{listed}\nFix them and load it "
            "again; docs/validation.md lists each rule and its parameters.",
            parameter="text",
            problems=problems,
        )
    return expectations


def _document(document: Any, problems: list[str]) -> list[Expectation]:
    if not isinstance(document, dict):
        problems.append(
            f"expected a mapping with keys 'version' and 'expectations', got {document!r:.80}"
        )
        return []
    unknown = sorted(set(map(str, document)) - {"version", "expectations"})
    if unknown:
        problems.append(f"unknown top-level key(s) {unknown}; expected 'version', 'expectations'")
    if document.get("version") != FORMAT_VERSION:
        problems.append(
            f"version: expected {FORMAT_VERSION}, got {document.get('version')!r}; this "
            "Loopwise reads suites of format version 1"
        )
    items = document.get("expectations")
    if not isinstance(items, list):
        problems.append(f"expectations: expected a list of rules, got {items!r:.80}")
        return []
    expectations = []
    for i, item in enumerate(items):
        expectation = _expectation(item, f"expectations[{i}]", problems)
        if expectation is not None:
            expectations.append(expectation)
    return expectations


def _expectation(item: Any, path: str, problems: list[str]) -> Expectation | None:
    if not isinstance(item, dict):
        problems.append(f"{path}: expected a mapping like {{rule: range, ...}}, got {item!r:.80}")
        return None
    rule = item.get("rule")
    if rule == "custom":
        problems.append(
            f"{path}.rule: custom checks are Python functions and cannot live in YAML; add "
            "them in code: suite.expectations.append(Custom(name=..., fn=...))"
        )
        return None
    cls = RULES.get(rule) if isinstance(rule, str) else None
    if cls is None:
        problems.append(f"{path}.rule: expected one of {sorted(RULES)}, got {rule!r}")
        return None
    fields = {f.name: f for f in dataclasses.fields(cls)}
    params = {k: v for k, v in item.items() if k != "rule"}
    ok = True
    for key in params:
        if key not in fields:
            problems.append(
                f"{path}.{key}: unknown parameter for rule {rule!r}; expected one of "
                f"{sorted(fields)}"
            )
            ok = False
    for name, f in fields.items():
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if required and name not in params:
            problems.append(f"{path}.{name}: missing; rule {rule!r} needs it")
            ok = False
    if not ok:
        return None
    expectation = cls(**params)
    bad = expectation.problems()
    problems.extend(f"{path}.{name}: {message}" for name, message in bad)
    return None if bad else expectation
