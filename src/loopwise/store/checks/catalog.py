"""Checks of the catalog: model flavours and aliases, artifact digests, dataset suites."""

from __future__ import annotations

from typing import cast

from loopwise.errors import InvalidArgumentError
from loopwise.store.artifacts import check_digest
from loopwise.store.checks.constraints import Options, refusal
from loopwise.store.checks.names import check_name
from loopwise.store.checks.values import check_storable_text, check_yaml_text

__all__ = [
    "MAX_SUITE_CHARS",
    "MODEL_FLAVOURS",
    "PICKLE_FLAVOURS",
    "check_alias",
    "check_dataset_suite",
    "check_digest_argument",
    "check_flavour",
    "check_optional_digest",
]

MODEL_FLAVOURS = frozenset({"lightgbm", "onnx", "python", "sklearn", "xgboost"})
"""The flavours a model version may record: those ``loopwise.registry.flavours`` can load (a
registry test keeps the two lists equal; the store sits below the registry)."""

PICKLE_FLAVOURS = frozenset({"python"})
"""The flavours whose loader unpickles (the registry test keeps this equal to the flavours with
``uses_pickle``); the server reads it here so that serving the API never imports the loaders."""

MAX_SUITE_CHARS = 1_000_000
"""The longest validation suite (YAML text) a dataset may keep: far beyond any real one."""

FLAVOUR = Options(
    options=tuple(sorted(MODEL_FLAVOURS)),
    kind=str,
    expected=f"the model flavour to be one of {sorted(MODEL_FLAVOURS)}",
    hint="Register models with lw.models.log_model, which picks it.",
    show=lambda value: repr(value)[:60],
)
ON_FAILURE = Options(
    options=("warn", "fail"),
    expected="on_failure 'warn' (log the version, report the findings) or 'fail' (refuse the "
    "version)",
)


def check_flavour(flavour: object) -> str:
    """A known flavour name: a version whose flavour no loader knows is refused on the way in."""
    return cast(str, FLAVOUR.check(flavour, "flavour"))


def check_alias(alias: object) -> str:
    """Alias names: like other names, but never a number (numbers name versions)."""
    name = check_name(alias, "alias")
    if name.isdigit():
        raise InvalidArgumentError(
            f"Expected an alias that is not a number, got {alias!r}: numbers name versions. "
            "Choose a word such as 'production' or 'candidate'.",
            parameter="alias",
        )
    return name


def check_digest_argument(digest: object, what: str) -> str:
    """An artifact digest ``sha256:<64 hex digits>`` passed as parameter ``what``."""
    if not isinstance(digest, str):
        raise refusal(f"{what} as a digest 'sha256:<64 hex digits>'", repr(digest), parameter=what)
    try:
        check_digest(digest)
    except InvalidArgumentError as exc:
        raise InvalidArgumentError(exc.message, parameter=what) from None
    return digest


def check_optional_digest(digest: object, what: str) -> str | None:
    """None, or an artifact digest."""
    return None if digest is None else check_digest_argument(digest, what)


def check_dataset_suite(suite: object, on_failure: object) -> tuple[str, str]:
    """A suite to attach to a dataset: non-empty YAML text of bounded size, and what a
    failing version does (``warn`` or ``fail``)."""
    ON_FAILURE.check(on_failure, "on_failure")
    text = check_yaml_text(
        suite,
        ("the suite", "a suite"),
        MAX_SUITE_CHARS,
        "suite",
        max_values=MAX_SUITE_CHARS,
        build="Build one with loopwise.data.validation.infer_suite(df).to_yaml().",
        shorten="Split it, or check fewer columns.",
    )
    return check_storable_text(text, "the suite"), str(on_failure)
