"""scikit-learn models, saved with skops (no code runs on load).

skops only builds the types it is told to trust. At save time we record the types the file
contains; at load time we trust exactly those, and only for a file whose digest matched the
registry's record, so Loopwise loads what it wrote without asking and never widens trust for a
file it cannot vouch for.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from loopwise.errors import InvalidArgumentError, UnsafeModelError, require_extra
from loopwise.registry.flavours.base import Flavour

__all__ = ["SklearnFlavour"]

FILE = "model.skops"


class SklearnFlavour(Flavour):
    name = "sklearn"
    package = "sklearn"
    extra = "sklearn"

    def save(self, model: Any, folder: Path) -> dict[str, Any]:
        sio = require_extra("skops.io", "sklearn")
        sklearn = require_extra("sklearn", "sklearn")
        from sklearn.exceptions import NotFittedError
        from sklearn.utils.validation import check_is_fitted

        try:
            check_is_fitted(model)
        except NotFittedError as exc:
            raise InvalidArgumentError(
                f"Expected a fitted model, got an unfitted {type(model).__name__}. Call "
                "model.fit(X, y) before logging it.",
                parameter="model",
            ) from exc
        path = folder / FILE
        sio.dump(model, path)
        return {
            "file": FILE,
            "trusted_types": sorted(sio.get_untrusted_types(file=path)),
            "class": f"{type(model).__module__}.{type(model).__qualname__}",
            "sklearn_version": sklearn.__version__,
        }

    def load(self, folder: Path, metadata: Mapping[str, Any]) -> Any:
        sio = require_extra("skops.io", "sklearn")
        path = folder / str(metadata.get("file", FILE))
        recorded = set(metadata.get("trusted_types", []))
        found = set(sio.get_untrusted_types(file=path))
        unexpected = sorted(found - recorded)
        if unexpected:
            raise UnsafeModelError(
                f"The model file {path.name} contains types that were not recorded when it was "
                f"saved: {unexpected}. It was not loaded. Register the model again from its source.",
                unexpected_types=unexpected,
            )
        return sio.load(path, trusted=sorted(found))
