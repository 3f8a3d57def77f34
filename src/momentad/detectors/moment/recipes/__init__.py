"""MOMENT's recipes (``moment.zero_shot.recipe``): how windows are cut, scored and trained on.

A recipe is one module of this package defining a :class:`Recipe` subclass registered under its
name. The detector (:mod:`momentad.detectors.moment.detector`) loads the weights, makes trainable
what ``finetune.method`` names and hands the rest to the recipe picked once, so no other code
branches on the recipe's name:

- ``momentad``: windows of ``window.length`` (non-overlapping at test), per-step errors
  averaged, trained in :class:`momentad.training.TrainLoop`;
- ``tsbad``: TSB-AD 1.5's MOMENT (stride-1 windows, one error per window, its own loop).
"""

from __future__ import annotations

import difflib
import importlib
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from momentad.detectors.moment.scoring import reconstruction_error
from momentad.errors import InputError

RECIPES = tuple(sorted(p.stem for p in Path(__file__).parent.glob("*.py") if not p.stem.startswith("_")))


class Recipe:
    """One recipe, bound to the detector it serves (``host``: the model, device, params, context
    and the level/scale adjustment ``host.with_stats``)."""

    name: ClassVar[str]
    # TSB-AD never calls eval(): its scores carry dropout noise (seeded here)
    score_in_train_mode: ClassVar[bool] = False
    # whether moment.finetune.gradient_checkpointing applies (tsbad keeps momentfm's default, on)
    sets_checkpointing: ClassVar[bool] = True

    def __init__(self, host: Any):
        self.host = host
        self.training: dict[str, Any] | None = None

    @staticmethod
    def check(params: Any) -> None:
        """Refuse settings this recipe cannot run (one line naming the key and the fix)."""

    def length(self) -> tuple[int, str]:
        """The scoring window's length and the params key that sets it."""
        raise NotImplementedError

    def context(self, length: int) -> int:
        """The sequence length MOMENT sees for a window of ``length`` steps."""
        return length

    def fit(self, train: Any, val: Any) -> None:
        """Fine-tune the host's trainable weights on a budget's rows."""
        raise NotImplementedError

    def channel_scores(self, split: Any) -> np.ndarray:
        """(timesteps, KPIs) per-step evidence of a split."""
        raise NotImplementedError

    def per_step(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(b, 1, context) -> (b, context) anomaly evidence per step."""
        return reconstruction_error(self.host.model_, x, mask)

    def added_parameters(self) -> int:
        """Parameters the recipe trains beside the model's (e.g. a classification head)."""
        return 0

    def save(self, folder: Path) -> dict[str, Any]:
        """Write what the recipe adds to a saved model; returns its part of detector.json."""
        return {}

    def load(self, folder: Path, state: dict[str, Any]) -> None:
        pass

    def facts(self) -> dict[str, Any]:
        """What the details record about its training."""
        return {}


def recipe_class(name: str) -> type[Recipe]:
    """The recipe registered as ``name``, or a one-line error naming the known ones."""
    if name not in RECIPES:
        close = difflib.get_close_matches(str(name), RECIPES, n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise InputError(f"params.yaml: moment.zero_shot.recipe must be one of {', '.join(map(repr, RECIPES))}; got "
                         f"{name!r} ({hint}each recipe is a module of momentad.detectors.moment.recipes)")  # fmt: skip
    module = importlib.import_module(f"{__name__}.{name}")
    return module.RECIPE
