"""Triton decode kernels for SparQ Attention (CUDA; CPU through ``TRITON_INTERPRET=1``).

Pipeline (paper Alg. 1 with GQA): :func:`prepare_query` (top-r components, temperature),
:func:`approx_logits` (step 1, S-tiled K_t gather), :func:`select_topk` (exact radix top-k,
window, sinks, alpha; :func:`select_topk_sampled` and :func:`select_topk_hist` spread the passes
over a row across many programs), :func:`sparse_attention` (step 2, split over the selected rows,
reallocation).
Each kernel has a pure-torch ``*_reference`` beside it.
"""

from ._dispatch import (
    dense_decode,
    dense_decode_is_faster,
    fallback_verdict,
    prepare_query,
    sparq_attention_triton,
    supports,
)
from ._fused_mha import select_fused_mha
from ._prep import prepare_query_fused
from ._select import select_topk, select_topk_reference, select_topk_torch
from ._select_hist import select_topk_hist
from ._select_sample import select_topk_sampled
from ._step1 import approx_logits, approx_logits_reference
from ._step2 import sparse_attention, sparse_attention_reference

__all__ = [
    "approx_logits",
    "approx_logits_reference",
    "dense_decode",
    "dense_decode_is_faster",
    "fallback_verdict",
    "prepare_query",
    "prepare_query_fused",
    "select_fused_mha",
    "select_topk",
    "select_topk_hist",
    "select_topk_reference",
    "select_topk_sampled",
    "select_topk_torch",
    "sparq_attention_triton",
    "sparse_attention",
    "sparse_attention_reference",
    "supports",
]
