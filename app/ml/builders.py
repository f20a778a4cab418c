"""The builders the application passes to ``load_registry``: the domain's, and the fitted model kind's.

A fitted version is checked against scikit-learn when it loads (``app.ml.model_version``), and importing
scikit-learn and skops takes seconds: more than the rest of the service's start-up. It is imported when a
version of that kind is first built, so a service or command whose catalog holds none never pays for it.
"""

from collections.abc import Mapping

from app.domain.classifiers import registry
from app.domain.classifiers.base import Classifier, ClassifierDefinition

MODEL_KIND = "sklearn-logistic-il6"
"""The kind of a fitted logistic model compiled to an IL6 cutoff (``app.ml.model_version``)."""


def build_model_version(definition: ClassifierDefinition, artifact: bytes | None) -> Classifier:
    """``app.ml.model_version.build``, imported on first use (a ``Builder``)."""
    from app.ml import model_version

    return model_version.build(definition, artifact)


BUILDERS: Mapping[str, registry.Builder] = {**registry.BUILDERS, MODEL_KIND: build_model_version}
"""The domain's builders plus the fitted model kind."""
