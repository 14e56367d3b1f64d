"""Profiles of dataset versions in the store: each version keeps its profile as a blob named by
its digest (``DatasetVersion.profile_digest``); a version logged before profiles existed is
profiled on first read.
"""

from __future__ import annotations

from loopwise.context import current
from loopwise.data.profiles.table import Profile, table_profile
from loopwise.data.versions import get_dataset, load_dataset
from loopwise.errors import ConflictError, InvalidArgumentError, PermissionDeniedError
from loopwise.store import DatasetVersion, Store

__all__ = ["dataset_profile", "save_profile"]


def save_profile(store: Store, result: Profile) -> str:
    """Store a profile as a blob; its digest (what ``DatasetVersion.profile_digest`` holds)."""
    digest, _ = store.artifacts.put_bytes(result.to_bytes())
    return digest


def dataset_profile(ref: str | DatasetVersion) -> Profile:
    """The profile of a dataset version (``"acs-ma"``, ``"acs-ma/3"`` or a DatasetVersion).

    Read from its blob, verified against its digest. A version logged before profiles
    existed is profiled now, and its profile stored and recorded for next time.
    """
    ctx = current()
    version = get_dataset(ref)
    if version.profile_digest is None:
        # A DatasetVersion passed in may predate a backfill: ask the store for the current one.
        version = ctx.store.get_dataset_version(version.project, version.name, version.version)
    if version.profile_digest is not None:
        data = ctx.store.artifacts.read_bytes(
            version.profile_digest, name=f"profile of dataset {version.ref}"
        )
        return Profile.from_bytes(data)
    result = table_profile(load_dataset(version, format="arrow"))
    if result is None:
        raise InvalidArgumentError(
            f"Expected dataset {version.ref} to have a column of number, text, boolean or time "
            f"type to profile; its columns are {version.schema}.",
            parameter="ref",
        )
    try:
        digest = save_profile(ctx.store, result)
        ctx.store.set_dataset_profile(version.project, version.name, version.version, digest)
    except PermissionDeniedError:  # a read-only token: the profile, just not kept
        return result
    except ConflictError:  # another process backfilled it first: theirs is the version's
        return dataset_profile(
            ctx.store.get_dataset_version(version.project, version.name, version.version)
        )
    return result
