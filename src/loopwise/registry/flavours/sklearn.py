"""scikit-learn models, saved with skops (no code runs on load).

skops only builds the types it is told to trust. Loopwise trusts a fixed set, written here:
the classes of scikit-learn, NumPy and SciPy (classes only: a function such as
``subprocess.run`` or ``numpy.load`` inside a ``FunctionTransformer`` would run when the model
predicts) and a few named functions that scikit-learn's own estimators hold. The one who loads
may add names (``load(..., trusted_types=[...])``, ``loopwise serve --trust-type``); the types a
version's metadata records at save time are kept for information only, since whoever registers
a version writes its metadata.

A skops file is a zip whose bytes change from one save to the next (entry times, object ids as
names); ``save`` rewrites it so that the same fitted model always gives the same bytes, and so the
same digest in the registry, the pipeline cache and ``loopwise reproduce``.
"""

from __future__ import annotations

import functools
import importlib
import io
import json
import stat
import zipfile
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from loopwise.errors import InvalidArgumentError, UnsafeModelError, require_extra
from loopwise.registry.flavours.base import MAX_QUOTED_CHARS, Flavour, model_file

__all__ = ["TRUSTED_FUNCTIONS", "TRUSTED_PACKAGES", "SklearnFlavour", "trusted_by_default"]

TRUSTED_PACKAGES = ("sklearn", "numpy", "scipy")
"""Packages whose classes skops may build (a class defined there, not one imported into them)."""
TRUSTED_FUNCTIONS = frozenset(
    {
        # A class outside the packages; it can only wrap callables that are trusted themselves.
        "functools.partial",
        # HistGradientBoosting's categorical preprocessing.
        "sklearn.utils.validation.check_array",
        # Default score functions of the univariate feature selectors.
        "sklearn.feature_selection._univariate_selection.f_classif",
        "sklearn.feature_selection._univariate_selection.f_regression",
        "sklearn.feature_selection._univariate_selection.chi2",
        "sklearn.feature_selection._mutual_info.mutual_info_classif",
        "sklearn.feature_selection._mutual_info.mutual_info_regression",
        # KMeans' and BisectingKMeans' inner loops; FeatureAgglomeration's pooling.
        "sklearn.cluster._kmeans._kmeans_single_lloyd",
        "sklearn.cluster._kmeans._kmeans_single_elkan",
        "numpy.mean",
        # SplineTransformer's array conversion.
        "scipy._lib.array_api_compat.numpy._aliases.asarray",
    }
)
"""Functions trusted by exact name: ones scikit-learn's estimators hold by default, which
compute on their arguments and nothing else."""
MAX_LISTED_TYPES = 20

FILE = "model.skops"
SCHEMA = "schema.json"
ZIP_TIME = (1980, 1, 1, 0, 0, 0)
"""The earliest time a zip entry can carry: every entry gets it, whenever it was written."""
ZIP_FILE_MODE = (stat.S_IFREG | 0o644) << 16
ZIP_UNIX = 3
"""The "made by" system of every entry (zipfile picks 0 on Windows and 3 elsewhere)."""


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
        deterministic = _deterministic_skops(path.read_bytes())
        if deterministic is not None:
            path.write_bytes(deterministic)
        return {
            "file": FILE,
            "trusted_types": sorted(sio.get_untrusted_types(file=path)),
            "class": f"{type(model).__module__}.{type(model).__qualname__}",
            "sklearn_version": sklearn.__version__,
        }

    def load(
        self,
        folder: Path,
        metadata: Mapping[str, Any],
        *,
        allow_pickle: bool = False,
        trusted_types: Collection[str] = (),
    ) -> Any:
        sio = require_extra("skops.io", "sklearn")
        path = model_file(folder, metadata, FILE)
        found = sorted(set(sio.get_untrusted_types(file=path)))
        extra = set(trusted_types)
        untrusted = [t for t in found if t not in extra and not trusted_by_default(t)]
        if untrusted:
            listed = [t[:MAX_QUOTED_CHARS] for t in untrusted[:MAX_LISTED_TYPES]]
            more = len(untrusted) - len(listed)
            raise UnsafeModelError(
                f"The model file {path.name} holds types Loopwise does not trust: {listed}"
                + (f" and {more} more" if more else "")
                + ". skops would build them, and a function among them runs when the model "
                "predicts. It was not loaded. If you know these types are safe, trust them where "
                "you load it: lw.models.load(..., trusted_types=[...]), or "
                "`loopwise serve --trust-type NAME`.",
                untrusted_types=listed,
            )
        return sio.load(path, trusted=found)


def trusted_by_default(name: str) -> bool:
    """Whether skops may build ``name`` (a type name as skops reports it) without being told."""
    return name in TRUSTED_FUNCTIONS or _package_class(name)


@functools.lru_cache(maxsize=1024)
def _package_class(name: str) -> bool:
    """``name`` is a class defined in a trusted package (imported to find out, never called)."""
    parts = name.split(".")
    if len(parts) < 2 or parts[0] not in TRUSTED_PACKAGES:
        return False
    if not all(p.isidentifier() for p in parts) or any(
        p.startswith("test") or p == "conftest" for p in parts[:-1]
    ):
        return False
    try:
        module = importlib.import_module(".".join(parts[:-1]))
    except Exception:  # not a module of the package: not something it defines
        return False
    found = getattr(module, parts[-1], None)
    return isinstance(found, type) and found.__module__.split(".")[0] in TRUSTED_PACKAGES


class _Renumbering:
    """New names for what skops names after the object it saved: ``id(obj)`` in ``"__id__"``
    and in ``<id>.npy`` / ``<id>.npz`` members; a random ``<uuid>.bin`` for bytes."""

    def __init__(self) -> None:
        self.ids: dict[int, int] = {}
        self.files: dict[str, str] = {}
        self._other_files = 0

    def new_id(self, old: int) -> int:
        # From 1: skops' loader does not remember a node whose id is falsy, and a later
        # reference to that object would then fail to load.
        return self.ids.setdefault(old, len(self.ids) + 1)

    def new_file(self, old: str, node_id: Any) -> str:
        if old not in self.files:
            stem, dot, suffix = old.partition(".")
            if stem.isdigit() and type(node_id) is int and int(stem) == node_id:
                self.files[old] = f"{self.new_id(node_id)}{dot}{suffix}"
            else:
                self._other_files += 1
                self.files[old] = f"file-{self._other_files}{dot}{suffix}"
        return self.files[old]

    def state(self, value: Any) -> Any:
        """``value`` (part of schema.json) with its ids and file names renumbered, in the order
        they appear. Only a node's own ``__id__`` and ``file`` are touched: a node is a dict
        whose ``__loader__`` is a string, and user data never is one (dict keys hold node
        states, numbers and strings sit inside JSON strings or in non-node dicts)."""
        if isinstance(value, list):
            return [self.state(item) for item in value]
        if not isinstance(value, dict):
            return value
        node = isinstance(value.get("__loader__"), str)
        renamed: dict[str, Any] = {}
        for key, item in value.items():
            if node and key == "__id__" and type(item) is int:
                renamed[key] = self.new_id(item)
            elif node and key == "file" and isinstance(item, str):
                renamed[key] = self.new_file(item, value.get("__id__"))
            else:
                renamed[key] = self.state(item)
        return renamed


def _deterministic_skops(data: bytes) -> bytes | None:
    """The skops file ``data`` rewritten so that the same model always gives the same bytes:
    object ids renumbered in the order schema.json first mentions them, members in that order
    (schema.json last, as skops writes it), fixed times and permissions, each member compressed
    as before. None when the file is not laid out as expected; it is then kept as skops wrote
    it, since a model that loads matters more than a stable digest."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        infos = {info.filename: info for info in archive.infolist()}
        if SCHEMA not in infos or len(infos) != len(archive.infolist()):
            return None
        members = {name: archive.read(info) for name, info in infos.items()}
    renumbering = _Renumbering()
    schema = renumbering.state(json.loads(members[SCHEMA]))
    names = renumbering.files
    new_names = set(names.values())
    if set(names) != set(members) - {SCHEMA} or len(new_names) != len(names) or SCHEMA in new_names:
        return None
    # As skops writes it, so that the file differs from skops' own only in the renumbered ids.
    members[SCHEMA] = json.dumps(schema, indent=2).encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for old, new in [*names.items(), (SCHEMA, SCHEMA)]:
            info = zipfile.ZipInfo(new, date_time=ZIP_TIME)
            info.compress_type = infos[old].compress_type
            info.external_attr = ZIP_FILE_MODE
            info.create_system = ZIP_UNIX
            archive.writestr(info, members[old])
    return buffer.getvalue()
