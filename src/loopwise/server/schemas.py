"""The public JSON shapes of the REST API: request bodies and the entities it returns.

They mirror ``loopwise.store.entities`` field for field. Metric values may be NaN or ±infinity,
which JSON cannot carry as numbers: they travel as the strings ``"NaN"``, ``"Infinity"`` and
``"-Infinity"`` in both directions, and the OpenAPI schema says so.

Request fields take only what every store backend can keep: text without NUL characters or lone
surrogates, and integers that fit a signed 64-bit column. Anything else is a 400, not a 500.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from annotated_types import Ge, Le
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema

from loopwise.store.checks import check_storable_text
from loopwise.store.codec import json_float
from loopwise.store.entities import RunStatus

__all__ = [
    "INT64_MAX",
    "MAX_JSON_DEPTH",
    "AddPredictionSegments",
    "AliasMove",
    "ArtifactFileOut",
    "BlobOut",
    "Count",
    "CreateDatasetVersion",
    "CreateModelVersion",
    "CreateProject",
    "CreateRun",
    "DatasetSuiteOut",
    "DatasetVersionCreated",
    "DatasetVersionOut",
    "EndRun",
    "ErrorBody",
    "FloatValue",
    "Id",
    "Int64",
    "JsonObject",
    "LinkDataset",
    "LogMetrics",
    "LogParams",
    "MetricEntryIn",
    "MetricOut",
    "ModelVersionOut",
    "PredictionSegmentIn",
    "PredictionSegmentOut",
    "ProjectOut",
    "RecordArtifacts",
    "RegisteredModelOut",
    "RunOut",
    "SearchRuns",
    "SetAlias",
    "SetDatasetProfile",
    "SetDatasetSuite",
    "SetTags",
    "SpoolProgress",
    "StringMap",
    "Text",
]

FloatValue = Annotated[
    float,
    PlainSerializer(json_float, when_used="json"),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number"},
                {"type": "string", "enum": ["NaN", "Infinity", "-Infinity"]},
            ]
        }
    ),
]
"""A float that may be NaN or infinite (sent as a string in JSON)."""

INT64_MAX = 2**63 - 1
"""The largest integer a SQL ``BIGINT`` column holds; larger ones are refused, not overflowed."""


MAX_JSON_DEPTH = 64
"""How deeply a free-form JSON object may nest: deeper ones could be stored but not sent back."""


def _check_json_value(value: Any, where: str, depth: int = 1) -> None:
    if depth > MAX_JSON_DEPTH:
        raise ValueError(
            f"expected a JSON object nested at most {MAX_JSON_DEPTH} levels deep, got a deeper "
            f"one at {where}; flatten it or store it as an artifact"
        )
    if isinstance(value, str):
        check_storable_text(value, f"the text at {where or 'the top'}")
    elif isinstance(value, dict):
        for key, item in value.items():
            check_storable_text(key, f"the key {key!r} at {where or 'the top'}")
            _check_json_value(item, f"{where}.{key}", depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_json_value(item, f"{where}[{index}]", depth + 1)


def _storable_json(value: dict[str, Any]) -> dict[str, Any]:
    _check_json_value(value, "")
    return value


Text = Annotated[str, AfterValidator(check_storable_text)]
"""A string without NUL characters or lone surrogates."""

Int64 = Annotated[int, Ge(-INT64_MAX - 1), Le(INT64_MAX)]
"""An integer that fits a signed 64-bit column."""

Count = Annotated[int, Ge(0), Le(INT64_MAX)]
"""A non-negative ``Int64``."""

Id = Annotated[int, Ge(1), Le(INT64_MAX)]
"""A version number or a row id: they start at 1."""

JsonObject = Annotated[dict[str, Any], AfterValidator(_storable_json)]
"""A free-form JSON object of bounded depth whose strings (keys and values) are ``Text``."""

StringMap = dict[Text, Text]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- requests ------------------------------------------------------------------------------------
class CreateProject(Model):
    name: Text


class CreateRun(Model):
    name: Text
    tags: StringMap = Field(default_factory=dict)
    environment: JsonObject | None = None


class EndRun(Model):
    status: RunStatus


class SetTags(Model):
    tags: StringMap


class LogParams(Model):
    params: StringMap


class MetricEntryIn(Model):
    run_id: Text
    key: Text
    value: FloatValue
    step: Count = 0
    timestamp_ms: Int64


class LogMetrics(Model):
    entries: list[MetricEntryIn] = Field(max_length=100_000)
    spool_id: Text | None = Field(
        default=None,
        description="Set by a client draining its local metric spool: with `upto_seq`, makes "
        "replays after a crash write each value once.",
    )
    upto_seq: Count = 0


class SearchRuns(Model):
    filter: Text = ""
    order_by: list[Text] = Field(default_factory=list)
    max_results: int = Field(default=1000, ge=1, le=50_000)


class ArtifactFileIn(Model):
    path: Text
    digest: Text
    size_bytes: Count


class RecordArtifacts(Model):
    files: list[ArtifactFileIn] = Field(max_length=100_000)


class CreateDatasetVersion(Model):
    content_hash: Text
    artifact_digest: Text
    num_rows: Count
    schema_: StringMap = Field(alias="schema")
    split: Text | None = None
    description: Text | None = None
    profile_digest: Text | None = None


class SetDatasetProfile(Model):
    profile_digest: Text


class SetDatasetSuite(Model):
    suite: Text = Field(description="The validation suite as YAML text.")
    on_failure: Text = Field(
        default="warn",
        description="`warn` (log a failing version and report) or `fail` (refuse it).",
    )


class LinkDataset(Model):
    dataset_version_id: Id
    role: Text = "input"


class CreateModelVersion(Model):
    flavour: Text
    artifact_digest: Text
    run_id: Text | None = None
    signature: JsonObject | None = None
    metadata: JsonObject | None = None
    description: Text | None = None


class SetAlias(Model):
    version: Id


class PredictionSegmentIn(Model):
    project: Text
    deployment: Text
    hour_ms: Count
    digest: Text
    num_rows: Id
    min_timestamp_ms: Count
    max_timestamp_ms: Count
    size_bytes: Id


class AddPredictionSegments(Model):
    segments: list[PredictionSegmentIn] = Field(max_length=10_000)
    spool_id: Text | None = Field(
        default=None,
        description="Set by a prediction spool draining into the store: with `upto_seq`, makes "
        "replays after a crash index each prediction once.",
    )
    upto_seq: Count = 0


# -- responses -----------------------------------------------------------------------------------
class ErrorDetail(BaseModel):
    code: str
    message: str
    details: dict[str, Any] = Field(default_factory=dict)


class ErrorBody(BaseModel):
    """Every error the API returns has this shape."""

    error: ErrorDetail


class ProjectOut(BaseModel):
    id: int
    name: str
    created_ms: int


class RunOut(BaseModel):
    id: str
    project: str
    name: str
    status: RunStatus
    start_ms: int
    end_ms: int | None
    params: StringMap
    tags: StringMap
    metrics: dict[str, FloatValue]
    environment: dict[str, Any] | None


class MetricOut(BaseModel):
    key: str
    value: FloatValue
    step: int
    timestamp_ms: int


class SpoolProgress(BaseModel):
    spool_id: str
    committed_seq: int


class ArtifactFileOut(BaseModel):
    path: str
    digest: str
    size_bytes: int


class BlobOut(BaseModel):
    digest: str
    size_bytes: int


class DatasetVersionOut(BaseModel):
    id: int
    project: str
    name: str
    version: int
    content_hash: str
    artifact_digest: str
    num_rows: int
    schema_: StringMap = Field(alias="schema", serialization_alias="schema")
    created_ms: int
    split: str | None
    description: str | None
    profile_digest: str | None = None

    model_config = ConfigDict(populate_by_name=True)


class DatasetSuiteOut(BaseModel):
    project: str
    name: str
    suite: str
    on_failure: str
    updated_ms: int


class DatasetVersionCreated(BaseModel):
    version: DatasetVersionOut
    created: bool


class RegisteredModelOut(BaseModel):
    project: str
    name: str
    created_ms: int
    latest_version: int
    aliases: dict[str, int]
    description: str | None


class ModelVersionOut(BaseModel):
    id: int
    project: str
    name: str
    version: int
    flavour: str
    artifact_digest: str
    created_ms: int
    run_id: str | None
    signature: dict[str, Any] | None
    metadata: dict[str, Any]
    metrics: dict[str, FloatValue]
    datasets: list[str]
    aliases: list[str]
    description: str | None


class PredictionSegmentOut(BaseModel):
    project: str
    deployment: str
    hour_ms: int
    digest: str
    num_rows: int
    min_timestamp_ms: int
    max_timestamp_ms: int
    size_bytes: int
    created_ms: int


class AliasMove(BaseModel):
    alias: str
    version: int
    previous: int | None


class Health(BaseModel):
    status: Literal["ok"]
    version: str
    schema_revision: str | None = None
