"""A synthetic world for the autopilot tests: a stream with a known change point (and, when
asked, a window of broken inputs), a first model trained before the change, a deployment
serving it, and a policy that retrains with ``synthetic_pipeline.py``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

import loopwise as lw
from loopwise.autopilot.replay import Replayer
from loopwise.data import attach_suite, infer_suite

DEPLOYMENT = "synth-prod"
DAY_MS = 86_400_000
START_MS = 1_700_000_000_000 - 1_700_000_000_000 % DAY_MS
PIPELINE = f"{Path(__file__).with_name('synthetic_pipeline.py')}:retraining"
FEATURES = ["x1", "x2"]


def window_rows(index: int, rows: int, *, change: int, task: str, bug: int | None = None,
                seed: int = 0) -> pd.DataFrame:  # fmt: skip
    """Window ``index``: y follows x1 before ``change`` and x2 from it on; in window ``bug``
    x1 arrives a thousand times too large (an upstream unit bug)."""
    rng = np.random.default_rng([seed, index + 1000])
    x1, x2 = rng.normal(size=rows), rng.normal(size=rows)
    driver = x1 if index < change else x2
    if task == "classification":
        y: Any = (driver + 0.3 * rng.normal(size=rows) > 0).astype(np.int64)
    else:
        y = 3.0 * driver + 0.3 * rng.normal(size=rows)
    frame = pd.DataFrame({"x1": x1, "x2": x2, "y": y})
    if bug is not None and index == bug:
        frame["x1"] = frame["x1"] * 1000
    return frame


def policy_text(task: str = "classification", **overrides: Any) -> str:
    """The tests' policy as YAML; ``overrides`` replace whole sections (dicts)."""
    doc: dict[str, Any] = {
        "label": "y",
        "monitor": {"window": "1D", "min_labelled": 150},
        "retrain": {"pipeline": PIPELINE, "params": {"task": task}, "window": "3D",
                    "min_rows": 300, "cooldown": "1D"},
        "rollout": {"strategy": "canary", "steps": [20, 100], "min_samples": 60},
    }  # fmt: skip
    doc.update(overrides)
    return yaml.safe_dump(doc, sort_keys=False)


@dataclass
class World:
    """The deployment under test and what each window's traffic scored."""

    task: str = "classification"
    rows: int = 600
    change: int = 3
    bug: int | None = None
    ticks: int = 4
    label_delay: int = 0
    """Windows between serving a row and its label coming in (logged part for part)."""
    replayer: Replayer = field(default_factory=lambda: Replayer(DEPLOYMENT))
    served: list[float] = field(default_factory=list)
    """Per window: accuracy (classification) or RMSE (regression) of the answers served."""
    unlabelled: dict[int, list[tuple[list[str], list[Any]]]] = field(default_factory=dict)
    """Per window served, its parts' ids and labels still to come (``label_delay``)."""

    def setup(self, policy: str | None = None) -> None:
        # scikit-learn is an optional extra ([sklearn]): only the tests that train need it.
        from sklearn.linear_model import LinearRegression, LogisticRegression

        train = pd.concat([window_rows(-i, 1000, change=self.change, task=self.task)
                           for i in (1, 2)], ignore_index=True)  # fmt: skip
        dataset = lw.log_dataset(train, name="synthetic-train", split="train")
        attach_suite("synthetic-train", infer_suite(train[FEATURES]), on_failure="warn")
        model = LogisticRegression() if self.task == "classification" else LinearRegression()
        model.fit(train[FEATURES], train["y"])
        with lw.start_run(name="first") as run:
            run.use(dataset)
            version = run.log_model(model, name="synthetic", input_example=train[FEATURES].head(3))
        lw.deployments.create(DEPLOYMENT, "synthetic", version.version)
        lw.autopilot.set_policy(DEPLOYMENT, policy or policy_text(self.task))
        lw.autopilot.run_once(DEPLOYMENT, now_ms=START_MS)  # switched on as the stream begins

    def play(self, windows: range) -> None:
        """Serve each window in ``ticks`` parts, log the outcomes (of the window served
        ``label_delay`` windows before, part for part), tick after each part."""
        for index in windows:
            frame = window_rows(index, self.rows, change=self.change, task=self.task, bug=self.bug)
            start = START_MS + index * DAY_MS
            stamps = np.linspace(start, start + DAY_MS - 1, len(frame)).astype(np.int64)
            ids = [f"w{index}-{i}" for i in range(len(frame))]
            answers = np.zeros(len(frame))
            self.unlabelled[index] = []
            for number, part in enumerate(np.array_split(np.arange(len(frame)), self.ticks)):
                chunk = [ids[i] for i in part]
                answers[part] = self.replayer.serve(frame.iloc[part][FEATURES], chunk, stamps[part])
                self.unlabelled[index].append((chunk, frame["y"].to_numpy()[part].tolist()))
                due = self.unlabelled.get(index - self.label_delay, [])
                if number < len(due):
                    lw.log_outcomes(DEPLOYMENT, *due[number])
                end = int(stamps[part[-1]]) + 1
                lw.autopilot.run_once(DEPLOYMENT, now_ms=end)
            truth = frame["y"].to_numpy()
            if self.task == "classification":
                self.served.append(float((answers == truth).mean()))
            else:
                self.served.append(float(np.sqrt(((answers - truth) ** 2).mean())))

    def kinds(self) -> list[str]:
        return [d.kind for d in lw.autopilot.history(DEPLOYMENT)]
