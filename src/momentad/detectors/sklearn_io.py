"""scikit-learn estimators on disk without pickle: skops, with an explicit trusted-types list."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from momentad.errors import InputError

# Exactly the types our forests are made of; anything else in a file is refused.
TRUSTED = ["sklearn.tree._tree.Tree"]  # skops trusts the sklearn estimators themselves


def save_estimator(model: Any, path: Path) -> str:
    """Write ``model`` as a skops file; returns the file name for detector.json."""
    import skops.io as sio

    sio.dump(model, path)
    return path.name


def load_estimator(path: Path) -> Any:
    """Read a skops file, allowing only :data:`TRUSTED` types."""
    import skops.io as sio

    if not path.is_file():
        raise InputError(f"{path}: not found; re-run the method's stage (`dvc repro -f`)")
    untrusted = [t for t in sio.get_untrusted_types(file=path) if t not in TRUSTED]
    if untrusted:
        raise InputError(f"{path}: holds types outside the trusted list ({', '.join(untrusted[:3])}); refusing to load")
    return sio.load(path, trusted=TRUSTED)
