"""Reference models in the ``umup``, ``mup`` and ``sp`` parametrizations."""

from ._decoder import Decoder, DecoderConfig

__all__ = ["Decoder", "DecoderConfig", "build_decoder"]


def build_decoder(
    parametrization: str = "umup",
    width: int = 128,
    n_layers: int = 2,
    *,
    seed: int | None = 0,
    umup=None,
    **kwargs,
) -> Decoder:
    """Shorthand: ``Decoder(DecoderConfig(width=..., n_layers=..., parametrization=..., **kwargs),
    umup, seed=seed)``."""
    cfg = DecoderConfig(width=width, n_layers=n_layers, parametrization=parametrization, **kwargs)
    return Decoder(cfg, umup, seed=seed)
