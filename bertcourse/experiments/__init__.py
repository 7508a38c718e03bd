"""The head-to-head experiment's parts: same-budget set-up, cloze by cue, fine-tuning, influence, cost.

``python -m bertcourse.compare`` runs them all (see ``bertcourse.compare`` for the results schema);
chapters 07 and 08 import the pieces. ``experiments.report`` (tables and figures) needs matplotlib and
is not imported here.
"""

from bertcourse.experiments.cloze import cloze_accuracy, cloze_correct, cloze_scores, encode_cloze
from bertcourse.experiments.cost import forward_time
from bertcourse.experiments.finetune import finetune, representation_size, task_items
from bertcourse.experiments.influence import embedding_function, influence_matrix, model_influence, side_shares
from bertcourse.experiments.results import aggregate, stat, validate_results
from bertcourse.experiments.setup import (
    DATA_SEED,
    EVAL_SEED,
    MODELS,
    PRESETS,
    TASKS,
    Preset,
    PretrainingData,
    build_model,
    language,
    pretraining_data,
    same_budget_configs,
)

__all__ = [
    "DATA_SEED",
    "EVAL_SEED",
    "MODELS",
    "PRESETS",
    "TASKS",
    "Preset",
    "PretrainingData",
    "aggregate",
    "build_model",
    "cloze_accuracy",
    "cloze_correct",
    "cloze_scores",
    "embedding_function",
    "encode_cloze",
    "finetune",
    "forward_time",
    "influence_matrix",
    "language",
    "model_influence",
    "pretraining_data",
    "representation_size",
    "same_budget_configs",
    "side_shares",
    "stat",
    "task_items",
    "validate_results",
]
