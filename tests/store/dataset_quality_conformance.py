"""What every store backend keeps about data quality: profile digests and validation suites.

A backend's test class mixes in ``DatasetQualityConformance`` beside ``StoreConformance``; a
backend that answers ``blob_digests`` itself (not the remote one, whose server decides) also
mixes in ``DatasetBlobConformance``.
"""

from __future__ import annotations

import pytest

from loopwise.errors import ConflictError, InvalidArgumentError, NotFoundError
from loopwise.store import DatasetVersion, Store
from loopwise.store.checks import MAX_SUITE_CHARS

DATA = "sha256:" + "ab" * 32
PROFILE = "sha256:" + "01" * 32
OTHER_PROFILE = "sha256:" + "02" * 32
SUITE = "expectations:\n  - column: AGEP\n    rule: between\n    min: 0\n    max: 120\n"


class DatasetQualityConformance:
    def _version(
        self, store: Store, content_hash: str = "h1", profile_digest: str | None = None
    ) -> DatasetVersion:
        store.get_or_create_project("proj")
        version, _ = store.create_dataset_version(
            "proj",
            "acs",
            content_hash=content_hash,
            artifact_digest=DATA,
            num_rows=10,
            schema={"AGEP": "double"},
            profile_digest=profile_digest,
        )
        return version

    # -- profiles -------------------------------------------------------------------------------
    def test_a_version_keeps_its_profile_digest(self, store: Store) -> None:
        version = self._version(store, profile_digest=PROFILE)
        assert version.profile_digest == PROFILE
        assert store.get_dataset_version("proj", "acs", 1).profile_digest == PROFILE
        assert store.list_dataset_versions("proj")[0].profile_digest == PROFILE
        assert self._version(store, content_hash="h2").profile_digest is None

    def test_profile_is_backfilled_once(self, store: Store) -> None:
        old = self._version(store)
        assert old.profile_digest is None
        updated = store.set_dataset_profile("proj", "acs", 1, PROFILE)
        assert updated.profile_digest == PROFILE
        assert updated == store.get_dataset_version("proj", "acs", 1)
        assert store.set_dataset_profile("proj", "acs", 1, PROFILE) == updated  # same: no-op
        with pytest.raises(ConflictError, match="immutable"):
            store.set_dataset_profile("proj", "acs", 1, OTHER_PROFILE)
        assert store.get_dataset_version("proj", "acs", 1).profile_digest == PROFILE
        # The rest of the version is untouched.
        fields = ("id", "content_hash", "artifact_digest", "num_rows", "schema", "created_ms")
        assert [getattr(updated, f) for f in fields] == [getattr(old, f) for f in fields]

    def test_profile_of_unknown_version_or_bad_digest(self, store: Store) -> None:
        self._version(store)
        with pytest.raises(NotFoundError, match="no version 9"):
            store.set_dataset_profile("proj", "acs", 9, PROFILE)
        with pytest.raises(NotFoundError):
            store.set_dataset_profile("proj", "other", 1, PROFILE)
        for bad in ("sha256:xyz", "", None):
            with pytest.raises(InvalidArgumentError, match="profile_digest|sha256"):
                store.set_dataset_profile("proj", "acs", 1, bad)  # type: ignore[arg-type]
        with pytest.raises(InvalidArgumentError, match="sha256"):
            self._version(store, content_hash="h2", profile_digest="md5:00")
        assert store.get_dataset_version("proj", "acs", 1).profile_digest is None

    # -- validation suites ----------------------------------------------------------------------
    def test_suite_set_get_replace_delete(self, store: Store) -> None:
        store.get_or_create_project("proj")
        assert store.get_dataset_suite("proj", "acs") is None
        # A suite may be attached before the dataset's first version.
        attached = store.set_dataset_suite("proj", "acs", SUITE, "warn")
        assert (attached.project, attached.name, attached.suite, attached.on_failure) == (
            "proj",
            "acs",
            SUITE,
            "warn",
        )
        assert attached.updated_ms > 0
        assert store.get_dataset_suite("proj", "acs") == attached
        replaced = store.set_dataset_suite("proj", "acs", SUITE + "# v2\n", "fail")
        assert (replaced.suite, replaced.on_failure) == (SUITE + "# v2\n", "fail")
        assert replaced.updated_ms >= attached.updated_ms
        assert store.get_dataset_suite("proj", "acs") == replaced
        assert store.get_dataset_suite("proj", "other") is None
        store.delete_dataset_suite("proj", "acs")
        assert store.get_dataset_suite("proj", "acs") is None
        with pytest.raises(NotFoundError, match="no validation suite"):
            store.delete_dataset_suite("proj", "acs")

    def test_suites_are_per_project_and_name(self, store: Store) -> None:
        for project in ("proj", "proj2"):
            store.get_or_create_project(project)
        store.set_dataset_suite("proj", "acs", SUITE, "warn")
        store.set_dataset_suite("proj", "iris", "expectations: []\n", "fail")
        assert store.get_dataset_suite("proj2", "acs") is None
        suite = store.get_dataset_suite("proj", "iris")
        assert suite is not None and suite.on_failure == "fail"
        with pytest.raises(NotFoundError, match="project"):
            store.set_dataset_suite("nope", "acs", SUITE, "warn")
        with pytest.raises(NotFoundError, match="project"):
            store.get_dataset_suite("nope", "acs")

    @pytest.mark.parametrize(
        ("suite", "on_failure", "message"),
        [
            (SUITE, "error", "on_failure 'warn'"),
            (SUITE, None, "on_failure 'warn'"),
            ("", "warn", "non-empty YAML"),
            ("   \n", "warn", "non-empty YAML"),
            (None, "warn", "non-empty YAML"),
            ("x" * (MAX_SUITE_CHARS + 1), "warn", f"at most {MAX_SUITE_CHARS}"),
            ("a: \x00", "warn", "NUL"),
        ],
    )
    def test_bad_suites_are_refused(
        self, store: Store, suite: object, on_failure: object, message: str
    ) -> None:
        store.get_or_create_project("proj")
        with pytest.raises(InvalidArgumentError, match=message):
            store.set_dataset_suite("proj", "acs", suite, on_failure)  # type: ignore[arg-type]
        assert store.get_dataset_suite("proj", "acs") is None

    def test_bad_dataset_name_for_a_suite(self, store: Store) -> None:
        store.get_or_create_project("proj")
        with pytest.raises(InvalidArgumentError, match="dataset name"):
            store.set_dataset_suite("proj", "no spaces", SUITE, "warn")


class DatasetBlobConformance(DatasetQualityConformance):
    def test_profile_digests_are_referenced_blobs(self, store: Store) -> None:
        self._version(store)
        self._version(store, content_hash="h2", profile_digest=PROFILE)
        store.set_dataset_profile("proj", "acs", 1, OTHER_PROFILE)
        assert {DATA, PROFILE, OTHER_PROFILE} <= store.blob_digests("proj")
        store.get_or_create_project("proj2")
        assert PROFILE not in store.blob_digests("proj2")
