"""Where the bundled models live: ``resources/models/`` (see :func:`nodeview.resources.resources_dir`)."""

from __future__ import annotations

from ...resources import resources_dir

DEFAULT_MODEL_FILE = "nodeview-nodule.onnx"
RANKER_WEIGHTS_FILE = "nodeview-proposal-ranker.json"


def default_model_path() -> str:
    """The bundled nodule model; its re-ranker sits beside it (:data:`.reranker.RERANKER_FILE`)."""
    return str(resources_dir() / "models" / DEFAULT_MODEL_FILE)


def proposal_ranker_path() -> str:
    """The proposal ranker's weights (:mod:`.ranker_weights`); they belong to the proposer, not to a model."""
    return str(resources_dir() / "models" / RANKER_WEIGHTS_FILE)
