"""How well a served model predicts: realised performance from labelled predictions and, where
labels have not arrived, performance estimated from the model's confidence (CBPE).

Offline analysis (monitoring is neither the control plane, ``loopwise.server``, nor the data
plane, ``loopwise.serving``): everything here computes on frames and arrays, with no store.
``realised`` cuts a frame into windows (``loopwise.monitoring.windows``) and slices
(``slices``) and measures each cell (``metrics``, ``intervals``, ``inputs``) into a
``PerformanceReport`` (``report``); ``estimation`` is the label-free side (its arithmetic in
``cbpe``, the classifier's scores read by ``scores``), and ``estimated_vs_realised`` sets the
two beside each other once labels arrive.
"""

from loopwise.monitoring.performance.estimated_vs_realised import compare_estimated_realised
from loopwise.monitoring.performance.estimation import (
    EstimatedPerformance,
    MetricEstimate,
    PerformanceEstimator,
)
from loopwise.monitoring.performance.realised import performance
from loopwise.monitoring.performance.report import PerformanceReport, slice_minimums

__all__ = [
    "EstimatedPerformance",
    "MetricEstimate",
    "PerformanceEstimator",
    "PerformanceReport",
    "compare_estimated_realised",
    "performance",
    "slice_minimums",
]
