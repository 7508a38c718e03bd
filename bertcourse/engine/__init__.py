"""The pre-training engine: one loop (:func:`train`) for every model, objective and number of processes.

``loop`` (the steps), ``loss`` (a batch's loss in training and evaluation, autocast), ``schedule``
(AdamW groups, warm-up and decay), ``distributed`` (torchrun's process group), ``checkpoint``
(resumable, verified safetensors) and ``flops`` (FLOPs per token, MFU). Models come from
``bertcourse.registry``; data from ``bertcourse.data.pretraining`` or any ``DataLoader``.
"""

from bertcourse.engine.checkpoint import TrainingState, load_checkpoint, save_checkpoint
from bertcourse.engine.distributed import Distributed, setup
from bertcourse.engine.flops import flops_per_token, mfu, peak_bf16_flops
from bertcourse.engine.loop import History, NonFiniteLossError, StepBatches, train
from bertcourse.engine.loss import autocast, evaluate, global_loss
from bertcourse.engine.schedule import lr_lambda, param_groups

__all__ = [
    "Distributed",
    "History",
    "NonFiniteLossError",
    "StepBatches",
    "TrainingState",
    "autocast",
    "evaluate",
    "flops_per_token",
    "global_loss",
    "load_checkpoint",
    "lr_lambda",
    "mfu",
    "param_groups",
    "peak_bf16_flops",
    "save_checkpoint",
    "setup",
    "train",
]
