"""Train the serving benchmark's model and save it, for Loopwise or for MLflow.

Run by ``benchmarks/serving.py`` in each system's own environment, so that each saves the model
its own way: ``python serving_model.py loopwise STORE`` registers it in a Loopwise store (alias
``production``); ``python serving_model.py mlflow FOLDER`` saves it with ``mlflow.sklearn``.
Both train the same model: a histogram gradient boosting classifier (200 iterations, fixed
seed) on the 2015 ACS rows, the 16 features as numbers.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier

DATA = (
    Path(__file__).resolve().parents[1]
    / "src"
    / "loopwise"
    / "examples"
    / "acs_employment_ma.parquet"
)
FEATURES = [
    "AGEP", "SCHL", "MAR", "RELP", "DIS", "ESP", "CIT", "MIG", "MIL", "ANC",
    "NATIVITY", "DEAR", "DEYE", "DREM", "SEX", "RAC1P",
]  # fmt: skip
TRUSTED = ["sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"]


def train(data: Path) -> tuple[HistGradientBoostingClassifier, pd.DataFrame]:
    frame = pd.read_parquet(data)
    train_rows = frame[frame["year"] == 2015]
    X = train_rows[FEATURES].astype("float64")
    model = HistGradientBoostingClassifier(max_iter=200, early_stopping=False, random_state=2015)
    return model.fit(X, train_rows["employed"]), X


def main() -> None:
    system, target = sys.argv[1], Path(sys.argv[2])
    data = Path(sys.argv[3]) if len(sys.argv) > 3 else DATA
    model, X = train(data)
    if system == "loopwise":
        import loopwise as lw

        lw.init(project="bench", uri=target)
        with lw.start_run(name="serving-benchmark", capture_env=False) as run:
            version = run.log_model(model, name="employment", input_example=X.head(5))
        lw.models.set_alias("employment", version.version, "production")
        lw.shutdown()
    elif system == "mlflow":
        import mlflow.sklearn

        mlflow.sklearn.save_model(
            model, str(target), input_example=X.head(5), skops_trusted_types=TRUSTED
        )
    else:
        sys.exit(f"unknown system {system!r}; expected loopwise or mlflow")


if __name__ == "__main__":
    main()
