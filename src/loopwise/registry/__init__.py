"""The model registry: versions under a name, aliases, signatures and safe model formats."""

from loopwise.registry import models
from loopwise.registry.flavours import FLAVOURS, Flavour
from loopwise.registry.models import LoadedClassifier, LoadedModel, parse_ref
from loopwise.registry.signature import infer_signature
from loopwise.store import ModelVersion, RegisteredModel

__all__ = [
    "FLAVOURS",
    "Flavour",
    "LoadedClassifier",
    "LoadedModel",
    "ModelVersion",
    "RegisteredModel",
    "infer_signature",
    "models",
    "parse_ref",
]
