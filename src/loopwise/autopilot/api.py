"""The autopilot as users call it: ``lw.autopilot.set_policy("employment-prod", text)``,
``run_once``, ``history``, ``resume``.

Each function works on the current store and project (``lw.init``), or on the ``store`` and
``project`` given.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

from loopwise.autopilot.controller import Tick, run_once
from loopwise.autopilot.policy import Policy, check_outbound, parse_policy
from loopwise.autopilot.settings import OperatorSettings
from loopwise.autopilot.state import State
from loopwise.context import current
from loopwise.errors import ConflictError, InvalidArgumentError, NotFoundError
from loopwise.store import AutopilotDecision, AutopilotPolicy, Store

__all__ = [
    "OperatorSettings",
    "Tick",
    "get_policy",
    "history",
    "resume",
    "run_all",
    "run_once",
    "set_policy",
    "state",
]

log = logging.getLogger(__name__)

CHANGES = ("start", "rollout", "promote", "rollback", "escalate", "adopt", "resume")
"""Decision kinds that change what serves or whether the autopilot acts."""


def _context(store: Store | None, project: str | None) -> tuple[Store, str]:
    if store is not None and project is not None:
        return store, project
    ctx = current()
    return store or ctx.store, project or ctx.project


def set_policy(
    deployment: str,
    policy: str | Path,
    *,
    expected_revision: int | None = None,
    store: Store | None = None,
    project: str | None = None,
) -> AutopilotPolicy:
    """Check ``policy`` (YAML text, or a path to a YAML file) whole and make it the
    deployment's policy. An invalid policy raises InvalidArgumentError naming the field and
    replaces nothing."""
    store, project = _context(store, project)
    text = Path(policy).read_text() if isinstance(policy, Path) else policy
    parsed = parse_policy(text)
    check_outbound(parsed)
    if parsed.deployment is not None and parsed.deployment != deployment:
        raise InvalidArgumentError(
            f"deployment: the policy says it is for {parsed.deployment[:100]!r}, but it is being "
            f"set on {deployment!r}. Fix the file's deployment key or the deployment named.",
            parameter="deployment",
        )
    store.get_deployment(project, deployment)  # NotFoundError before anything is stored
    return store.set_autopilot_policy(project, deployment, text, expected_revision)


def get_policy(
    deployment: str,
    *,
    revision: int | None = None,
    store: Store | None = None,
    project: str | None = None,
) -> tuple[AutopilotPolicy, Policy]:
    """The stored policy (its text and revision) and what it means, defaults filled in."""
    store, project = _context(store, project)
    record = store.get_autopilot_policy(project, deployment, revision)
    return record, parse_policy(record.text, check_pipeline=False)


def history(
    deployment: str,
    *,
    changes_only: bool = False,
    store: Store | None = None,
    project: str | None = None,
) -> list[AutopilotDecision]:
    """Every decision of the deployment's autopilot, oldest first, with its evidence;
    ``changes_only``: only those that changed what serves or whether it acts."""
    store, project = _context(store, project)
    decisions = store.autopilot_decisions(project, deployment)
    return [d for d in decisions if d.kind in CHANGES] if changes_only else decisions


def run_all(
    deployments: Sequence[str] | None = None,
    *,
    now_ms: int | None = None,
    store: Store | None = None,
    project: str | None = None,
    settings: OperatorSettings | None = None,
) -> list[Tick]:
    """One tick of each named deployment (default: every deployment with a policy; then a
    deployment whose tick fails is logged and skipped, and the others still run). A named
    deployment's failure is raised, so that the caller sees it. ``settings``: as in
    ``run_once``."""
    store, project = _context(store, project)
    settings = OperatorSettings.from_env() if settings is None else settings
    if deployments is None:
        names = []
        for deployment in store.list_deployments(project):
            try:
                store.get_autopilot_policy(project, deployment.name)
            except NotFoundError:
                continue
            names.append(deployment.name)
    else:
        names = list(deployments)
    ticks = []
    for name in names:
        if deployments is not None:
            ticks.append(
                run_once(name, now_ms=now_ms, store=store, project=project, settings=settings)
            )
            continue
        try:
            ticks.append(
                run_once(name, now_ms=now_ms, store=store, project=project, settings=settings)
            )
        except Exception:
            log.exception("autopilot of %s: the tick failed; the next one tries again", name)
    return ticks


def state(
    deployment: str, *, store: Store | None = None, project: str | None = None
) -> State | None:
    """The autopilot's current state for the deployment (None before its first tick)."""
    store, project = _context(store, project)
    latest = store.latest_autopilot_decision(project, deployment)
    return State.from_json(latest.state) if latest else None


def resume(
    deployment: str,
    *,
    reason: str,
    store: Store | None = None,
    project: str | None = None,
) -> AutopilotDecision:
    """Let a paused autopilot act again (a person looked at what it escalated)."""
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidArgumentError(
            "reason: say why the autopilot may act again (it goes to the audit trail), e.g. "
            "'upstream AGEP fix deployed'.",
            parameter="reason",
        )
    store, project = _context(store, project)
    latest = store.latest_autopilot_decision(project, deployment)
    if latest is None or State.from_json(latest.state).phase != "paused":
        raise ConflictError(
            f"The autopilot of {deployment!r} is not paused; nothing to resume.",
            deployment=deployment,
        )
    resumed = State.from_json(latest.state)
    resumed.phase, resumed.paused_reason, resumed.failed_candidates = "watching", "", 0
    return store.record_autopilot_decision(
        project,
        deployment,
        latest.seq + 1,
        "resume",
        f"Resumed by a person: {reason.strip()}",
        resumed.to_json(),
        {"reason": reason.strip()},
        int(time.time() * 1000),
    )
