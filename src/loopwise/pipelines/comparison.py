"""Comparing two executions of the same steps, and saying in plain words why they differ.

``reproduce`` (reproduction.py) executes a run again; this module judges each step against the
original (identical, within a tolerance, or differs) and finds the causes: code, data, params,
seed, packages, Python or git state, or a step that is not deterministic.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from loopwise.pipelines.fingerprint import explain_difference
from loopwise.pipelines.ports import from_json
from loopwise.store import Store
from loopwise.tracking.environment import git_state

__all__ = [
    "DONE",
    "NumberComparison",
    "OutputComparison",
    "Side",
    "StepComparison",
    "Verdict",
    "children_of",
    "code_causes",
    "compare_step",
    "downstream_has_numbers",
    "environment_causes",
    "git_now",
    "in_order",
    "input_causes",
    "output_producers",
    "step_explanation",
    "worst",
]

Verdict = Literal["identical", "within_tolerance", "differs"]
_RANK: dict[Verdict, int] = {"identical": 0, "within_tolerance": 1, "differs": 2}
DONE = ("finished", "cached")
"""The states of a step that gave outputs."""
_MAX_PACKAGES_LISTED = 10


@dataclass(frozen=True)
class NumberComparison:
    """One metric (or numeric JSON output, named ``port.key``) before and now."""

    name: str
    old: float | None
    new: float | None
    relative_difference: float
    """``|old - new| / max(|old|, |new|)``; 0 when equal, inf when one side is missing."""
    within_tolerance: bool


@dataclass(frozen=True)
class OutputComparison:
    """One output's digest before and now (for a model: the content of its files)."""

    port: str
    kind: str
    old_digest: str | None
    new_digest: str | None

    @property
    def same(self) -> bool:
        return self.old_digest is not None and self.old_digest == self.new_digest


@dataclass(frozen=True)
class StepComparison:
    node: str
    verdict: Verdict
    old_run_id: str | None
    new_run_id: str | None
    outputs: list[OutputComparison] = field(default_factory=list)
    numbers: list[NumberComparison] = field(default_factory=list)

    @property
    def largest_difference(self) -> NumberComparison | None:
        """The number that moved most (relative), or None when all are equal."""
        moved = [n for n in self.numbers if n.relative_difference > 0]
        return max(moved, key=lambda n: n.relative_difference) if moved else None


# -- one step, as one execution left it -----------------------------------------------------


@dataclass
class Side:
    """One step as one execution left it: state, run, record, metrics and datasets used."""

    node: str
    state: str
    run_id: str | None = None
    record: dict[str, Any] | None = None
    error: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    datasets: dict[str, set[int]] = field(default_factory=dict)
    start_ms: int = 0

    @property
    def outputs(self) -> dict[str, Any]:
        return dict((self.record or {}).get("outputs", {}))

    @property
    def key(self) -> dict[str, Any]:
        return dict((self.record or {}).get("key", {}))


# -- comparing -------------------------------------------------------------------------------


def _value(store: Store, stored: Mapping[str, Any]) -> Any:
    text = stored.get("json")
    if text is None:
        text = store.artifacts.read_bytes(stored["blob"], "step value").decode()
    return from_json(text)


def _numbers(value: Any, path: str, into: dict[str, float]) -> Any:
    """Collect numeric leaves as ``path -> float``; answer the rest of the value's shape."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        into[path] = float(value)
        return "<number>"
    if isinstance(value, dict):
        return {k: _numbers(v, f"{path}.{k}", into) for k, v in value.items()}
    if isinstance(value, list):
        return [_numbers(v, f"{path}[{i}]", into) for i, v in enumerate(value)]
    return value


def _side_numbers(store: Store, side: Side) -> tuple[dict[str, float], dict[str, Any]]:
    numbers = dict(side.metrics)
    shapes: dict[str, Any] = {}
    for port, stored in side.outputs.items():
        if stored.get("kind") == "value":
            shapes[port] = _numbers(_value(store, stored), port, numbers)
    return numbers, shapes


def _compare_number(
    name: str, old: float | None, new: float | None, rtol: float, atol: float
) -> NumberComparison:
    if old is None or new is None:
        return NumberComparison(name, old, new, math.inf, False)
    if old == new or (math.isnan(old) and math.isnan(new)):
        return NumberComparison(name, old, new, 0.0, True)
    gap = abs(old - new)
    scale = max(abs(old), abs(new))
    relative = gap / scale if scale > 0 and math.isfinite(gap) else math.inf
    return NumberComparison(name, old, new, relative, gap <= atol + rtol * scale)


def compare_step(
    store: Store, old: Side, new: Side, rtol: float, atol: float, judged_downstream: bool
) -> StepComparison:
    """One step then and now; ``judged_downstream``: a step that reads its outputs has numbers,
    so that a differing model or dataset is judged by them."""
    if old.state not in DONE or new.state not in DONE:
        same_failure = old.state == new.state and old.error == new.error
        verdict: Verdict = "identical" if same_failure else "differs"
        return StepComparison(old.node, verdict, old.run_id, new.run_id)
    old_out, new_out = old.outputs, new.outputs
    outputs = [
        OutputComparison(
            port,
            str((old_out.get(port) or new_out.get(port) or {}).get("kind", "")),
            str(old_out[port]["hash"]) if port in old_out else None,
            str(new_out[port]["hash"]) if port in new_out else None,
        )
        for port in sorted(old_out.keys() | new_out.keys())
    ]
    old_numbers, old_shapes = _side_numbers(store, old)
    new_numbers, new_shapes = _side_numbers(store, new)
    numbers = [
        _compare_number(name, old_numbers.get(name), new_numbers.get(name), rtol, atol)
        for name in sorted(old_numbers.keys() | new_numbers.keys())
    ]
    if all(o.same for o in outputs) and all(n.relative_difference == 0 for n in numbers):
        verdict = "identical"
    else:
        # A differing value output is judged by its numbers when the rest of it is equal; a
        # differing model, dataset or file by the numbers of the steps that read it.
        unjudged = [
            o
            for o in outputs
            if not o.same
            and (
                old_shapes.get(o.port) != new_shapes.get(o.port)
                if o.kind == "value"
                else not judged_downstream
            )
        ]
        within = all(n.within_tolerance for n in numbers) and not unjudged
        verdict = "within_tolerance" if within else "differs"
    return StepComparison(old.node, verdict, old.run_id, new.run_id, outputs, numbers)


def _stored_hashes(item: Mapping[str, Any]) -> Iterator[str]:
    if item.get("kind") == "gather":
        for _, sub in item.get("items", []):
            yield from _stored_hashes(sub)
    elif item.get("kind") != "constant" and "hash" in item:
        yield str(item["hash"])


def output_producers(steps: Mapping[str, Side]) -> dict[str, tuple[str, str]]:
    """Output hash -> (node, port) within one execution."""
    return {
        str(stored["hash"]): (node, port)
        for node, side in steps.items()
        for port, stored in side.outputs.items()
    }


def children_of(steps: Mapping[str, Side]) -> dict[str, set[str]]:
    """The steps that read each step's outputs, found by content hash in the records."""
    producers = output_producers(steps)
    children: dict[str, set[str]] = {node: set() for node in steps}
    for node, side in steps.items():
        for item in (side.record or {}).get("inputs", {}).values():
            for digest in _stored_hashes(item):
                if digest in producers and producers[digest][0] != node:
                    children[producers[digest][0]].add(node)
    return children


def in_order(steps: Mapping[str, Side], children: Mapping[str, set[str]]) -> list[str]:
    """Upstream before downstream; among the ready ones, in the order they ran."""
    waiting = {node: 0 for node in steps}
    for below in children.values():
        for child in below:
            waiting[child] += 1
    order: list[str] = []
    ready = [node for node, count in waiting.items() if count == 0]
    while ready:
        ready.sort(key=lambda n: (steps[n].start_ms, n))
        node = ready.pop(0)
        order.append(node)
        for child in children[node]:
            waiting[child] -= 1
            if waiting[child] == 0:
                ready.append(child)
    return order + sorted(set(steps) - set(order))


def downstream_has_numbers(
    store: Store, steps: Mapping[str, Side], children: Mapping[str, set[str]]
) -> dict[str, bool]:
    has_numbers = {node: bool(_side_numbers(store, side)[0]) for node, side in steps.items()}

    def below(node: str, seen: set[str]) -> bool:
        for child in children[node] - seen:
            seen.add(child)
            if has_numbers[child] or below(child, seen):
                return True
        return False

    return {node: below(node, set()) for node in steps}


# -- explaining ------------------------------------------------------------------------------


def _renamed_code(old_key: Mapping[str, Any], new_key: Mapping[str, Any]) -> dict[str, Any]:
    """The old fingerprint with the step's module renamed to the new one's: a script run as
    __main__ is loaded under another name when executed again, with the same code."""
    code = dict(old_key.get("code") or {})
    old_module = str(old_key.get("step", "")).partition(":")[0]
    new_module = str(new_key.get("step", "")).partition(":")[0]
    if old_module and new_module and old_module != new_module:
        prefix = f"{old_module}:"
        code["sources"] = {
            (f"{new_module}:{k[len(prefix) :]}" if k.startswith(prefix) else k): v
            for k, v in (code.get("sources") or {}).items()
        }
    return code


def code_causes(old: Side, new: Side) -> list[str]:
    """How the step's own code (and the packages it imports) changed, in plain words."""
    old_key, new_key = old.key, new.key
    if not old_key.get("code") or not new_key.get("code"):
        return []
    before, after = _renamed_code(old_key, new_key), dict(new_key["code"])
    if (before.get("sources"), before.get("packages")) == (
        after.get("sources"),
        after.get("packages"),
    ):
        return []
    # Digests that differ, so that explain_difference lists the changes it finds.
    lines = explain_difference({**before, "digest": "before"}, {**after, "digest": "after"})
    return [f"code: {line}" for line in lines]


def input_causes(
    old: Side,
    new: Side,
    old_producers: Mapping[str, tuple[str, str]],
    same_output: Mapping[tuple[str, str], bool],
) -> list[str]:
    """Why the step's inputs differ: an upstream step's output, a param, a file, a dataset
    version, or the seed."""
    causes: list[str] = []
    old_inputs = old.key.get("inputs", {})
    new_inputs = new.key.get("inputs", {})
    recorded = (old.record or {}).get("inputs", {})
    now = (new.record or {}).get("inputs", {})
    for port in sorted(old_inputs.keys() | new_inputs.keys()):
        if port not in new_inputs:
            causes.append(f"input {port!r} is no longer passed")
            continue
        if port not in old_inputs:
            causes.append(f"input {port!r} is new")
            continue
        if old_inputs[port] == new_inputs[port]:
            continue
        item = recorded.get(port, {})
        upstream = [old_producers[h] for h in _stored_hashes(item) if h in old_producers]
        changed = sorted({n for n, p in upstream if not same_output.get((n, p), False)})
        if upstream and not changed:
            continue  # the same model content, saved again: not a difference
        if changed:
            names = ", ".join(repr(n) for n in changed)
            causes.append(
                f"data: input {port!r} differs because step {names} gave different output"
            )
        elif item.get("kind") == "constant":
            was, is_now = old.params.get(port, "?"), new.params.get(port, "?")
            causes.append(f"param: input {port!r} was {was}, now {is_now}")
        elif item.get("kind") == "path":
            where = item.get("path")
            state = "changed" if where and os.path.exists(where) else "is gone"
            causes.append(f"data: the file at {where} (input {port!r}) {state} since the run")
        elif item.get("kind") == "dataset":
            other = now.get(port, {})
            causes.append(
                f"data: input {port!r} was dataset {item.get('name')!r} version "
                f"{item.get('version')}, now {other.get('name')!r} version {other.get('version')}"
            )
        else:
            causes.append(
                f"data: input {port!r} differs ({_short(old_inputs[port])} then, "
                f"{_short(new_inputs[port])} now)"
            )
    for name in sorted(old.datasets.keys() | new.datasets.keys()):
        then, later = old.datasets.get(name, set()), new.datasets.get(name, set())
        if then != later:
            causes.append(
                f"data: it used dataset {name!r} {_versions(then)} then and {_versions(later)} "
                "now (the step picks it by name, and the name now points elsewhere)"
            )
    if old.key.get("seed") != new.key.get("seed"):
        causes.append(f"seed: {old.key.get('seed')} then, {new.key.get('seed')} now")
    return causes


def _versions(versions: set[int]) -> str:
    if not versions:
        return "not at all"
    return "version " + ", ".join(str(v) for v in sorted(versions))


def _short(digest: str | None) -> str:
    return "-" if digest is None else digest.removeprefix("sha256:")[:12]


def environment_causes(
    old_env: Mapping[str, Any], new_env: Mapping[str, Any], git_state_now: Mapping[str, Any] | None
) -> list[str]:
    """What changed around the code: packages, Python, and the git state of its folder now."""
    lines: list[str] = []
    old_packages = old_env.get("packages") or {}
    new_packages = new_env.get("packages") or {}
    if old_packages and new_packages:
        changes = []
        for name in sorted(old_packages.keys() | new_packages.keys()):
            was, now = old_packages.get(name), new_packages.get(name)
            if was == now:
                continue
            if was is None:
                changes.append(f"{name} {now} is new")
            elif now is None:
                changes.append(f"{name} {was} is no longer installed")
            else:
                changes.append(f"{name} {was} -> {now}")
        if changes:
            shown = ", ".join(changes[:_MAX_PACKAGES_LISTED])
            more = len(changes) - _MAX_PACKAGES_LISTED
            lines.append(
                f"packages: {len(changes)} changed since the original run: {shown}"
                + (f", and {more} more" if more > 0 else "")
            )
    if old_env.get("python") and new_env.get("python") and old_env["python"] != new_env["python"]:
        lines.append(f"python: {old_env['python']} then, {new_env['python']} now")
    old_git = old_env.get("git") or {}
    if old_git and git_state_now:
        if old_git.get("commit") != git_state_now.get("commit"):
            lines.append(
                f"code: the git commit was {str(old_git.get('commit'))[:12]} then and is "
                f"{str(git_state_now.get('commit'))[:12]} now"
            )
        elif old_git.get("diff_sha256") != git_state_now.get("diff_sha256"):
            lines.append(
                "code: the uncommitted changes differ (diff sha256 "
                f"{_short(old_git.get('diff_sha256'))} then, "
                f"{_short(git_state_now.get('diff_sha256'))} now)"
            )
    return lines


def _suggested_rtol(relative: float) -> str:
    if not math.isfinite(relative) or relative >= 1:
        return "a larger atol"
    return f"rtol={10 ** math.ceil(math.log10(relative)):g}"


def step_explanation(
    compared: StepComparison, old: Side, new: Side, causes: list[str], packages_changed: bool
) -> str | None:
    """One sentence on the step, or None when it is identical and nothing changed."""
    name = f"Step {compared.node!r}"
    if new.state not in DONE and old.state in DONE:
        what = {
            "skipped": "was skipped now (a step it reads from failed)",
            "missing": "is no longer in the pipeline",
        }.get(new.state, f"failed now: {new.error}")
        return f"{name} {what}."
    if old.state not in DONE and new.state in DONE:
        why = old.error or "no error recorded"
        return f"{name} was {old.state} in the original run ({why}) and succeeds now."
    if old.state not in DONE:
        return (
            None
            if compared.verdict == "identical"
            else f"{name} fails differently now: {new.error}."
        )
    if causes:
        verdict = {
            "identical": "gives identical outputs, although",
            "within_tolerance": "agrees within the tolerance; what changed:",
            "differs": "differs; what changed:",
        }[compared.verdict]
        return f"{name} {verdict} {'; '.join(causes)}."
    if compared.verdict == "identical":
        return None
    largest = compared.largest_difference
    if largest is None:
        moved = ", ".join(repr(o.port) for o in compared.outputs if not o.same)
        tail = f" Its output {moved} differs" + (
            "; the steps that read it agree within the tolerance."
            if compared.verdict == "within_tolerance"
            else "."
        )
    else:
        size = (
            f" Its numbers differ by up to {largest.relative_difference:.2g} (relative, in "
            f"{largest.name!r})"
        )
        if compared.verdict == "within_tolerance":
            tail = f"{size}, within the tolerance."
        else:
            tail = f"{size}; pass {_suggested_rtol(largest.relative_difference)} to accept that."
    return (
        f"{name} gave different results from the same code, inputs and seed: it is not "
        "deterministic (threads, unseeded randomness such as os.urandom or the clock, or data "
        "it reads that Loopwise does not track)"
        + (", or the package changes listed below reach it" if packages_changed else "")
        + "."
        + tail
    )


def git_now(kind: str, record: Mapping[str, Any]) -> dict[str, Any] | None:
    """The git state now of the folder that holds the run's code (its pipeline or step file)."""
    location = record.get("ref") if kind == "pipeline" else None
    file = str(location).rpartition(":")[0] if location else record.get("file")
    folder = Path(file).parent if file and Path(file).exists() else Path.cwd()
    return git_state(folder)


def worst(verdicts: list[Verdict]) -> Verdict:
    """The verdict of the whole: the worst of its steps'."""
    return max(verdicts, key=lambda v: _RANK[v], default="identical")
