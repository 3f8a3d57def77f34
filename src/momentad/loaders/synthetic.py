"""data.source: synthetic — the built-in seeded TrainTicket-like simulator (no download)."""

from __future__ import annotations

from momentad.loaders import Format, RawData
from momentad.synthetic import SyntheticParams, generate

FORMAT = Format(params=SyntheticParams, needs_path=False, simulated=True)


def load(path, options, data, seed) -> RawData:
    """Generate the synthetic series (options: data.synthetic); data.path is ignored. Faults are
    placed so that every split of data.split holds every fault type."""
    split = {"train": data.split.train, "val": data.split.val, "test": data.split.test}
    frame, description = generate(options, split, seed)
    return RawData(frame=frame, source="synthetic", name="synthetic-trainticket", info=description)
