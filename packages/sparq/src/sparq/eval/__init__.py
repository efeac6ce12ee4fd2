"""Offline accuracy harness: self-trained models, every method at the same transfer budget.

* :func:`run_recall_eval` — multi-query associative recall on a 4-layer GQA Llama-style model;
* :func:`run_lm_eval` — bits per byte of a byte-level LM trained on the stdlib sources;
* :func:`fidelity_and_q_stats` — SparQ output cosine / α error per layer and q's heavy tails.

Checkpoints ship in ``sparq/data`` so no training is needed (``sparq eval train`` re-creates them).
"""

from sparq.eval._harness import (
    evaluate_lm,
    evaluate_recall,
    fidelity_and_q_stats,
    make_attention,
)
from sparq.eval._model import ModelConfig, TinyLlama, dense_causal_attention
from sparq.eval._recipes import RECALL_TASK, recall_accuracy, train_byte_lm, train_recall
from sparq.eval._report import load_model, plot_rows, run_lm_eval, run_recall_eval
from sparq.eval._tasks import RecallTask, stdlib_bytes
from sparq.eval._train import load_checkpoint, save_checkpoint

__all__ = [
    "RECALL_TASK",
    "ModelConfig",
    "RecallTask",
    "TinyLlama",
    "dense_causal_attention",
    "evaluate_lm",
    "evaluate_recall",
    "fidelity_and_q_stats",
    "load_checkpoint",
    "load_model",
    "make_attention",
    "plot_rows",
    "recall_accuracy",
    "run_lm_eval",
    "run_recall_eval",
    "save_checkpoint",
    "stdlib_bytes",
    "train_byte_lm",
    "train_recall",
]
