"""Settings shared by the kernels."""

from __future__ import annotations

import os

# Triton's CPU interpreter mis-evaluates bf16 tensor-core products (it multiplies the raw bit
# patterns), so under TRITON_INTERPRET=1 the kernels upcast dot operands to fp32 first. Every
# other instruction (gathers, masks, online softmax, radix select) runs the same code path.
F32DOT = os.environ.get("TRITON_INTERPRET", "0") == "1"
