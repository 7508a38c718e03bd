"""The head-to-head experiment's parts: same-budget set-up, cloze by cue, fine-tuning, influence, cost.

``head_to_head.run`` runs them all (its docstring gives the results schema), also as
``python -m bertcourse.compare``; chapters 07 and 08 import the pieces (``build_model`` and
``same_budget_configs`` come from ``bertcourse.registry``). ``experiments.report`` (tables and
figures) needs matplotlib and is not imported here.
"""

from bertcourse.experiments.cloze import cloze_accuracy, cloze_correct, cloze_scores, encode_cloze
from bertcourse.experiments.cost import forward_time
from bertcourse.experiments.finetune import finetune, representation_size, task_items
from bertcourse.experiments.influence import embedding_function, influence_matrix, model_influence, side_shares
from bertcourse.experiments.results import aggregate, stat, t_quantile_975, validate_results
from bertcourse.experiments.setup import (
    DATA_SEED,
    EVAL_SEED,
    MODELS,
    PRESETS,
    ROWS,
    TASKS,
    Preset,
    PretrainingCorpus,
    Row,
    language,
    preset_configs,
    pretraining_corpus,
    variant_config,
)
from bertcourse.registry import build_model, same_budget_configs

__all__ = [
    "DATA_SEED",
    "EVAL_SEED",
    "MODELS",
    "PRESETS",
    "ROWS",
    "TASKS",
    "Preset",
    "PretrainingCorpus",
    "Row",
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
    "preset_configs",
    "pretraining_corpus",
    "representation_size",
    "same_budget_configs",
    "side_shares",
    "stat",
    "t_quantile_975",
    "task_items",
    "validate_results",
    "variant_config",
]
