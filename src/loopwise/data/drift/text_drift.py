"""Drift of free text: can a word classifier tell current texts from reference texts?

Counting values says nothing about a column whose values are nearly all distinct (names,
tickets, comments): every value is new, so every such column would drift. Evidently 0.7 tests
these *text* columns with a domain classifier instead, and so does Loopwise, with the same
pipeline (TF-IDF of words, a linear SGD classifier, a half held out), so that scores agree.
"""

from __future__ import annotations

import math
import threading
import warnings
from typing import Any

import numpy as np
import numpy.typing as npt

from loopwise.errors import require_extra

__all__ = ["TEXT_SPLIT_SEED", "text_classifier_auc", "text_classifier_p_value"]

TEXT_SPLIT_SEED = 42  # Evidently's: its train/test split and classifier use this seed
# ``warnings.catch_warnings`` swaps process-wide filters: two columns fitting at once on drift's
# threads would restore each other's, and a warning would leak. Text fits take turns.
_FIT_LOCK = threading.Lock()


def text_classifier_auc(
    reference: npt.NDArray[Any], current: npt.NDArray[Any]
) -> tuple[float, int, int]:
    """Held-out ROC AUC of Evidently's text domain classifier, with the held-out half's counts
    of reference and current texts. 0.5 when nothing in the words can tell the sides apart
    (no word occurs twice, or the held-out half holds one side only)."""
    # scikit-learn is an optional extra, and heavy: imported only when a text column is tested.
    require_extra("sklearn", "sklearn")
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import SGDClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import Pipeline

    texts = np.concatenate([reference, current]).astype(str)
    labels = np.r_[np.zeros(len(reference), dtype=np.int64), np.ones(len(current), dtype=np.int64)]
    train_x, test_x, train_y, test_y = train_test_split(
        texts, labels, test_size=0.5, random_state=TEXT_SPLIT_SEED, shuffle=True
    )
    held_out = (int(np.sum(test_y == 0)), int(np.sum(test_y == 1)))
    if min(held_out) == 0 or len(set(train_y.tolist())) < 2:
        return 0.5, *held_out
    pipeline = Pipeline(
        [
            ("words", TfidfVectorizer(sublinear_tf=True, max_df=0.5, stop_words="english")),
            (
                "classifier",
                SGDClassifier(
                    alpha=0.0001,
                    max_iter=50,
                    penalty="l1",
                    loss="modified_huber",
                    random_state=TEXT_SPLIT_SEED,
                ),
            ),
        ]
    )
    with _FIT_LOCK, warnings.catch_warnings():
        # Evidently's 50 iterations often stop short of convergence; the score is still its.
        warnings.simplefilter("ignore", ConvergenceWarning)
        try:
            pipeline.fit(train_x, train_y)
        except ValueError as exc:  # no word left ("empty vocabulary"): nothing to learn from
            if "vocabulary" not in str(exc) and "max_df" not in str(exc):
                raise
            return 0.5, *held_out
    scores = pipeline.predict_proba(test_x)[:, 1]
    return float(roc_auc_score(test_y, scores)), *held_out


def text_classifier_p_value(auc: float, reference_rows: int, current_rows: int) -> float:
    """How likely a classifier that guesses would score ``auc`` or more on these held-out rows:
    the normal approximation of the AUC of random scores (mean 0.5, variance
    ``(n0 + n1 + 1) / (12 n0 n1)``), the closed form of Evidently's 1,000 simulated guessers."""
    if reference_rows == 0 or current_rows == 0:
        return 1.0
    spread = math.sqrt((reference_rows + current_rows + 1) / (12 * reference_rows * current_rows))
    special = require_extra("scipy.special", "monitoring")
    return float(1 - special.ndtr((auc - 0.5) / spread))
