"""Parameter freezing by named groups (Snowflake, Blake et al. 2021: Z = {F_in, M, F_out})."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

GROUPS = ("encoder", "embedding", "message", "update", "decoder", "log_std", "body", "critic")
PRESETS = {
    "mlp": ("mlp", ()),
    "nervenet": ("gnn", ()),
    "snowflake": ("gnn", ("encoder", "message", "decoder")),
}


@dataclass(frozen=True)
class FreezeSpec:
    """Which parameter groups stay at their initial values for the whole run.

    Attributes:
        actor: ``"gnn"`` or ``"mlp"``.
        frozen: group names (``encoder``, ``message``, ``decoder``, ``update``, ``embedding``,
            ``log_std``, ``body``, ``critic``) frozen from initialisation: ``requires_grad=False``
            and
            never handed to the optimiser.
    """

    actor: str = "gnn"
    frozen: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        bad = [g for g in self.frozen if g not in GROUPS]
        if bad:
            raise ValueError(f"unknown freeze groups {bad}; valid groups: {list(GROUPS)}.")
        if self.actor not in ("gnn", "mlp"):
            raise ValueError(f"actor must be 'gnn' or 'mlp', got {self.actor!r}.")

    @classmethod
    def preset(cls, name: str) -> FreezeSpec:
        """``mlp`` (MLP actor, nothing frozen), ``nervenet`` (GNN, nothing frozen), ``snowflake``
        (GNN with encoder + message + decoder frozen)."""
        if name not in PRESETS:
            raise ValueError(f"unknown policy preset {name!r}; choose one of {list(PRESETS)}.")
        actor, frozen = PRESETS[name]
        return cls(actor, tuple(frozen))

    def apply(self, model: nn.Module) -> dict[str, list[str]]:
        """Freeze the named groups of ``model`` (an :class:`ActorCritic`); return ``{group:
        [names]}``
        of the frozen parameters (for logging)."""
        out: dict[str, list[str]] = {}
        for name, p in model.named_parameters():
            g = model.param_group(name)
            if g in self.frozen:
                p.requires_grad_(False)
                out.setdefault(g, []).append(name)
        return out
