"""The autopilot: watches a deployment, retrains through a pipeline, gates the candidate, rolls
it out (and back), and escalates to a person when retraining no longer helps.

``lw.autopilot.set_policy(deployment, yaml_text)`` sets a deployment's policy (checked whole);
``run_once(deployment)`` is one tick of the controller; ``history(deployment)`` says why the
model changed; ``Replayer`` serves past rows through a deployment to backtest a policy. What
it may run (retraining pipelines, pickled models) is the operator's to allow
(``OperatorSettings``), never a policy's. See docs/autopilot.md.
"""

from loopwise.autopilot.api import (
    OperatorSettings,
    Tick,
    get_policy,
    history,
    resume,
    run_all,
    run_once,
    set_policy,
    state,
)
from loopwise.autopilot.policy import Policy, parse_policy
from loopwise.autopilot.replay import Replayer
from loopwise.autopilot.state import State

__all__ = [
    "OperatorSettings",
    "Policy",
    "Replayer",
    "State",
    "Tick",
    "get_policy",
    "history",
    "parse_policy",
    "resume",
    "run_all",
    "run_once",
    "set_policy",
    "state",
]
