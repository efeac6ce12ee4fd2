"""FP8 linear layers with dynamically updated per-tensor scales; telemetry, plots, fast kernels.

Implements the recipe of Perez et al. 2023, "Training and inference of large language models
using 8-bit floating point": integer power-of-two scaling biases computed just in time per tensor
(FP8-AMAX), a constant-bias baseline (FP8-CSCALE), plus a compile-friendly delayed recipe.
"""

from importlib.metadata import PackageNotFoundError, version

from ._convert import convert_to_float8, revert_to_linear
from ._formats import (
    E4M3,
    E4M3FNUZ,
    E5M2,
    E5M2FNUZ,
    FORMATS,
    FP8Format,
    decode,
    get_format,
    simulate_cast,
    simulate_round,
)
from ._inference import (
    Float8InferenceLinear,
    calibrate,
    load_quantized,
    quantize_for_inference,
    save_quantized,
)
from ._linear import Float8Linear
from ._linear_fn import float8_linear, hardware_fp8_supported
from ._plot import plot_bias_distribution, plot_bias_heatmap, plot_loss_curves
from ._recipes import ConstantScaling, DelayedScaling, Formats, JustInTimeScaling
from ._recorder import ScaleRecorder
from ._roofline import predict_speedup
from ._scaling import amax, bias_to_scale, compute_bias, compute_scale, quantize

try:
    __version__ = version("fp8-scaling")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"

__all__ = [
    "E4M3",
    "E4M3FNUZ",
    "E5M2",
    "E5M2FNUZ",
    "FORMATS",
    "ConstantScaling",
    "DelayedScaling",
    "FP8Format",
    "Float8InferenceLinear",
    "Float8Linear",
    "Formats",
    "JustInTimeScaling",
    "ScaleRecorder",
    "__version__",
    "amax",
    "bias_to_scale",
    "calibrate",
    "compute_bias",
    "compute_scale",
    "convert_to_float8",
    "decode",
    "float8_linear",
    "get_format",
    "hardware_fp8_supported",
    "load_quantized",
    "plot_bias_distribution",
    "plot_bias_heatmap",
    "plot_loss_curves",
    "predict_speedup",
    "quantize",
    "quantize_for_inference",
    "revert_to_linear",
    "save_quantized",
    "simulate_cast",
    "simulate_round",
]
