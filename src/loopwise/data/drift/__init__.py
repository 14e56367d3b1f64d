"""Drift: has the distribution of a current sample moved away from a reference sample?

``report`` compares column by column (``drift``, ``prediction_drift``, ``DriftReport``) with the
two-sample tests of ``stattests`` (one small ``StatTest`` object each, Evidently 0.7's defaults);
``columns`` turns frames, Arrow tables and files into the per-column ``Sample``s they compare;
``domain_drift`` asks whether a classifier can tell the samples apart (multivariate drift).
"""

from loopwise.data.drift.domain_drift import DomainClassifierDrift, domain_classifier_drift
from loopwise.data.drift.report import (
    DEFAULT_DRIFT_SHARE,
    ColumnDrift,
    DriftReport,
    drift,
    prediction_drift,
)

__all__ = [
    "DEFAULT_DRIFT_SHARE",
    "ColumnDrift",
    "DomainClassifierDrift",
    "DriftReport",
    "domain_classifier_drift",
    "drift",
    "prediction_drift",
]
