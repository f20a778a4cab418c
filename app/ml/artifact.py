"""Saving and loading a fitted estimator with skops, trusting only the types the IL6 model is made of.

skops (skops.io, https://skops.readthedocs.io/en/stable/persistence.html) stores an estimator as a zip of
``schema.json`` and numpy ``.npy`` arrays and rebuilds only the types it trusts; nothing is unpickled
(STYLE.md habit 7). skops trusts many scikit-learn types by default, which is wider than this service
wants, so before skops constructs anything this module reads the schema itself, lists every type and
loader the artifact names, and refuses any outside ``ALLOWED_TYPES`` / ``ALLOWED_LOADERS``.
"""

import io
import json
import zipfile
from collections.abc import Iterator
from typing import Any

import skops.io

from app.domain.classifiers.base import ClassifierDefinitionError

FORMAT = "skops"
FILE = "model.skops"

ALLOWED_TYPES: frozenset[str] = frozenset(
    {
        # the estimator: TunedThresholdClassifierCV over Pipeline[log -> StandardScaler -> LogisticRegression]
        "sklearn.model_selection._classification_threshold.TunedThresholdClassifierCV",
        "sklearn.pipeline.Pipeline",
        "sklearn.preprocessing._function_transformer.FunctionTransformer",
        "numpy.log",
        "sklearn.preprocessing._data.StandardScaler",
        "sklearn.linear_model._logistic.LogisticRegression",
        # threshold tuning: its inner cross-validation and its scorer (balanced accuracy, positive label)
        "sklearn.model_selection._split.StratifiedKFold",
        "sklearn.metrics._scorer._Scorer",
        "sklearn.metrics._scorer._CurveScorer",
        "sklearn.utils._metadata_requests.MetadataRequest",
        "sklearn.utils._metadata_requests.MethodMetadataRequest",
        "app.ml.model_version.balanced_accuracy",
        # fitted arrays and containers; skops writes every JSON value (numbers too) as "builtins.str"
        "numpy.ndarray",
        "numpy.float64",
        "builtins.dict",
        "builtins.list",
        "builtins.tuple",
        "builtins.str",
    }
)
"""Every type an artifact of kind ``sklearn-logistic-il6`` may name; anything else is refused by name."""

ALLOWED_LOADERS: frozenset[str] = frozenset(
    {"ObjectNode", "DictNode", "ListNode", "TupleNode", "JsonNode", "NdArrayNode", "FunctionNode", "TypeNode"}
)
"""skops node kinds the model needs. Others (methods, partials, ``__reduce__``, operators) are refused."""


def dumps(estimator: object) -> bytes:
    """The estimator in skops format, refused here already if it holds a type a load would refuse."""
    data: bytes = skops.io.dumps(estimator)
    artifact_types(data)
    return data


def _nodes(document: Any) -> Iterator[dict[str, Any]]:
    if isinstance(document, dict):
        if "__class__" in document or "__loader__" in document:
            yield document
        for value in document.values():
            yield from _nodes(value)
    elif isinstance(document, list):
        for value in document:
            yield from _nodes(value)


def _schema(data: bytes) -> Any:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return json.loads(archive.read("schema.json"))
    except (zipfile.BadZipFile, KeyError, ValueError, UnicodeDecodeError) as error:
        raise ClassifierDefinitionError(
            f"artifact is not a readable skops file ({type(error).__name__})"
        ) from None


def artifact_types(data: bytes) -> tuple[str, ...]:
    """Every type the artifact names (sorted), read from its schema without constructing anything.

    Refuses an artifact naming a type outside ``ALLOWED_TYPES`` or a loader outside ``ALLOWED_LOADERS``.
    """
    found: set[str] = set()
    for node in _nodes(_schema(data)):
        module, name, loader = node.get("__module__"), node.get("__class__"), node.get("__loader__")
        if not all(isinstance(part, str) for part in (module, name, loader)):
            raise ClassifierDefinitionError("artifact has a node without its module, class and loader")
        if loader not in ALLOWED_LOADERS:
            raise ClassifierDefinitionError(
                f"artifact uses a skops loader outside the allowed list: {loader}"
            )
        found.add(f"{module}.{name}")
    refused = sorted(found - ALLOWED_TYPES)
    if refused:
        raise ClassifierDefinitionError(
            "artifact contains types outside the allowed list: " + ", ".join(refused)
        )
    return tuple(sorted(found))


def loads(data: bytes) -> Any:
    """Rebuild the estimator, after checking every type it names against ``ALLOWED_TYPES``.

    skops' own audit (``get_untrusted_types``, then ``loads(trusted=...)``) runs as well, trusting only the
    allowed types it reports; both must agree before anything is constructed.
    """
    artifact_types(data)
    try:
        untrusted = skops.io.get_untrusted_types(data=data)
        refused = sorted(set(untrusted) - ALLOWED_TYPES)
        if refused:
            raise ClassifierDefinitionError(
                "artifact contains types outside the allowed list: " + ", ".join(refused)
            )
        return skops.io.loads(data, trusted=untrusted)
    except ClassifierDefinitionError:
        raise
    except Exception as error:  # skops raises TypeError, ValueError, KeyError, OSError... for bad files
        raise ClassifierDefinitionError(
            f"artifact could not be loaded with skops ({type(error).__name__})"
        ) from None
