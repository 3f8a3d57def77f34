"""Early stopping on validation loss for the neural baselines: keep the best weights."""

from __future__ import annotations

from torch import nn


class EarlyStopping:
    """Call :meth:`step` once per epoch; it returns True when training should stop."""

    def __init__(self, patience: int, min_delta: float = 1e-6):
        self.patience, self.min_delta = patience, min_delta
        self.best, self.bad, self.best_state = float("inf"), 0, None

    def step(self, val_loss: float, model: nn.Module) -> bool:
        if val_loss < self.best - self.min_delta:
            self.best, self.bad = val_loss, 0
            self.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            return False
        self.bad += 1
        return self.bad >= self.patience

    def restore(self, model: nn.Module) -> None:
        """Load the best weights seen (if any epoch improved)."""
        if self.best_state is not None:
            model.load_state_dict(self.best_state)
