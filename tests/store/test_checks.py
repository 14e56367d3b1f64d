"""The declared input rules of ``loopwise.store.checks``: one message shape for every refusal,
invalid values generated from each declaration and refused by the check that uses it, and a
package that imports no store backend."""

from __future__ import annotations

import ast
import re
import string
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple

import pytest

import loopwise.store.checks as checks
from loopwise.errors import InvalidArgumentError
from loopwise.store.checks import (
    autopilot,
    catalog,
    deployments,
    monitoring,
    names,
    predictions,
    runs,
    values,
)
from loopwise.store.checks.constraints import Constraint

from ..import_graph import assert_acyclic, imported, package_modules

AREAS: list[ModuleType] = [
    autopilot,
    catalog,
    deployments,
    monitoring,
    names,
    predictions,
    runs,
    values,
]
ONE_SHAPE = re.compile(r"Expected .+, got .+\.( \S.*)?", re.DOTALL)
ALERT: dict[str, Any] = {
    "deployment": "churn",
    "rule": "drift",
    "severity": "warning",
    "fingerprint": "drift/churn/AGEP",
    "message": "AGEP drifted.",
    "details": {},
    "window_start_ms": None,
    "window_end_ms": None,
}


def declared() -> dict[str, Constraint]:
    """Every constraint an area module declares, by ``module.NAME``."""
    return {
        f"{module.__name__.rsplit('.', 1)[1]}.{name}": value
        for module in AREAS
        for name, value in vars(module).items()
        if isinstance(value, Constraint)
    }


def template_words(constraint: Constraint) -> dict[str, object]:
    """A word for every field the constraint's templates name."""
    fields = {
        field
        for template in (constraint.expected, constraint.hint)
        for _, field, _, _ in string.Formatter().parse(template)
        if field
    }
    return {field: f"<{field}>" for field in fields - {"parameter", "low", "high"}}


@pytest.mark.parametrize("name", sorted(declared()))
def test_every_declared_constraint_refuses_in_one_shape(name: str) -> None:
    constraint = declared()[name]
    words = template_words(constraint)
    invalid = constraint.invalid_values()
    assert invalid
    for value in invalid:
        assert not constraint.is_satisfied_by(value), value
        error = constraint.refusal(value, "the_parameter", **words)
        assert isinstance(error, InvalidArgumentError)
        assert ONE_SHAPE.fullmatch(error.message), error.message
        assert error.details["parameter"] == "the_parameter"
        assert ("received" in error.details) == constraint.received
        assert set(constraint.details) <= set(error.details)


class Use(NamedTuple):
    """How a check uses a declared constraint: the call, the parameter and words it names, and
    which invalid values reach the constraint (others are refused before it)."""

    call: Callable[[object], object]
    parameter: str
    words: dict[str, object]
    reaches: Callable[[object], bool] = lambda value: True


def _is_str(value: object) -> bool:
    return isinstance(value, str)


def _is_int(value: object) -> bool:
    return type(value) is int


USES: dict[str, Use] = {
    "names.NAME": Use(lambda v: checks.check_name(v, "project"), "name", {"what": "project"}),
    "names.KEY": Use(lambda v: checks.check_key(v, "metric"), "key", {"what": "metric"}),
    "values.INTEGER": Use(lambda v: checks.check_int(v, "n", 0, " (u)"), "n", {"unit": " (u)"}),
    "values.INT64": Use(lambda v: checks.check_int(v, "n"), "n", {}, _is_int),
    "values.TEXT": Use(
        lambda v: checks.check_text(v, "description"),
        "description",
        {"what": "description"},
        lambda v: v is not None,
    ),
    "values.SPOOL_ID": Use(checks.check_spool_id, "spool_id", {}),
    "runs.STEP": Use(lambda v: checks.check_step("loss", v), "step", {"key": "loss"}),
    "runs.VALUE": Use(
        lambda v: checks.check_string_map({"depth": v}, "param"),
        "param",
        {"what": "param", "key": "depth"},
        _is_str,
    ),
    "catalog.FLAVOUR": Use(checks.check_flavour, "flavour", {}),
    "catalog.ON_FAILURE": Use(lambda v: checks.check_dataset_suite("a: 1", v), "on_failure", {}),
    "deployments.REASON": Use(checks.check_reason, "reason", {}, _is_str),
    "monitoring.REQUEST_ID": Use(
        lambda v: checks.check_request_id(v, "request_ids[0]"),
        "request_ids",
        {"where": "request_ids[0]"},
    ),
    "monitoring.RULE": Use(lambda v: checks.check_alert(**{**ALERT, "rule": v}), "rule", {}),
    "monitoring.SEVERITY": Use(
        lambda v: checks.check_alert(**{**ALERT, "severity": v}), "severity", {}
    ),
    "monitoring.FINGERPRINT": Use(
        lambda v: checks.check_alert(**{**ALERT, "fingerprint": v}), "fingerprint", {}
    ),
    "monitoring.OVERWRITE": Use(checks.check_overwrite, "overwrite", {}),
    "monitoring.ALERT_ID_TYPE": Use(checks.check_alert_id, "alert_id", {}),
    "monitoring.ALERT_ID": Use(checks.check_alert_id, "alert_id", {}, _is_int),
    "monitoring.ALERT_STATUS": Use(
        lambda v: checks.check_alert_query("churn", v, None, 10),
        "status",
        {},
        lambda v: v is not None,
    ),
    "monitoring.ALERT_LIMIT": Use(
        lambda v: checks.check_alert_query("churn", None, None, v), "limit", {}
    ),
    "autopilot.DECISION_KIND": Use(
        lambda v: checks.check_autopilot_decision(1, v, "Retrain.", {}, {}, 0), "kind", {}
    ),
    "autopilot.SUMMARY": Use(
        lambda v: checks.check_autopilot_decision(1, "retrain", v, {}, {}, 0),
        "summary",
        {},
        lambda v: isinstance(v, str) and bool(v.strip()),
    ),
}
NOT_DIRECT = {
    "monitoring.DETAILS": "measures the details' JSON text, not a value the caller passes",
}


def test_every_declared_constraint_is_used_by_a_check() -> None:
    assert set(declared()) == set(USES) | set(NOT_DIRECT)


@pytest.mark.parametrize("name", sorted(USES))
def test_the_check_refuses_the_declarations_invalid_values(name: str) -> None:
    constraint, use = declared()[name], USES[name]
    reached = [value for value in constraint.invalid_values() if use.reaches(value)]
    assert reached
    for value in reached:
        expected = constraint.refusal(value, use.parameter, **use.words)
        with pytest.raises(InvalidArgumentError) as caught:
            use.call(value)
        assert caught.value.message == expected.message
        assert caught.value.details == expected.details


def test_the_checks_import_no_store_backend_and_no_cycle() -> None:
    folder = Path(checks.__file__).parent
    modules = package_modules("loopwise.store.checks", folder)
    graph: dict[str, set[str]] = {}
    for module, tree in modules.items():
        targets = {
            name
            for node in ast.walk(tree)
            if isinstance(node, (ast.Import, ast.ImportFrom))
            for name in imported(node)
        }
        allowed = {"loopwise.errors", "loopwise.store.artifacts", "loopwise.store.entities"}
        outside = {
            t for t in targets if t.startswith("loopwise.") and not t.startswith(checks.__name__)
        }
        assert outside <= allowed, f"{module} imports {sorted(outside - allowed)}"
        graph[module] = {t for t in targets if t in modules}
    assert_acyclic(graph)
