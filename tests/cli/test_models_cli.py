"""``loopwise models show`` warns about pickles by the version's flavour, not its metadata."""

from __future__ import annotations

import pickle
from pathlib import Path

from loopwise.store import open_store

from .harness import cli


def test_a_pickle_is_flagged_even_when_its_metadata_says_nothing(tmp_path: Path) -> None:
    store_path = tmp_path / "store"
    store = open_store(store_path)
    try:
        folder = tmp_path / "model"
        folder.mkdir()
        (folder / "model.pkl").write_bytes(pickle.dumps({"not": "a model"}))
        digest = store.artifacts.put_tree(folder)
        store.get_or_create_project("cli")
        store.create_model_version("cli", "quiet", flavour="python", artifact_digest=digest)
    finally:
        store.close()
    shown = cli(store_path, "models", "show", "quiet/1").stdout
    assert "Stored with pickle" in shown and "--allow-pickle" in shown
