"""data.source: synthetic — the built-in seeded TrainTicket-like simulator (no download)."""

from __future__ import annotations

from momentad.loaders import RawData
from momentad.synthetic import SyntheticConfig, generate


def load(path, options, data_params, seed) -> RawData:
    """Generate the synthetic series; data.path is ignored."""
    cfg = SyntheticConfig.from_params(options)
    split = data_params.get("split") or {"train": 0.7, "val": 0.15, "test": 0.15}
    frame, description = generate(cfg, split, seed)
    return RawData(frame=frame, source="synthetic", name="synthetic-trainticket", info=description)
