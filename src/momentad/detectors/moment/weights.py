"""Loading MOMENT the real way, from one of three places (``moment.checkpoint``):

- a hub id such as ``AutonLab/MOMENT-1-large`` -> ``MOMENTPipeline.from_pretrained`` (hub or
  the local Hugging Face cache; ``moment.offline: true`` never touches the network);
- a local directory holding ``config.json`` + ``model.safetensors`` (what ``save_pretrained``
  writes: a ``huggingface-cli download`` of the hub repository, or the ``pretrain`` stage's
  checkpoint under ``models/pretrained/``);
- ``random-init:<size>`` (tiny | mini | small | base | large): the MOMENT architecture with
  seeded random weights, written once as a local checkpoint and loaded through the same
  ``from_pretrained`` path. These are **not** foundation-model weights.

Every load returns :class:`ModelInfo`, whose ``origin`` says where the weights come from:
``hub`` (pretrained elsewhere: a hub id, or a local copy without this project's marker),
``here`` (pretrained by this project's ``pretrain`` stage; ``pretraining`` says on what and for
how long) or ``random-init``. A checkpoint written here carries ``momentad_init.json`` (the
marker) beside its weights.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from momentad.errors import InputError

log = logging.getLogger(__name__)

MARKER = "momentad_init.json"  # written beside random-init checkpoints
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")

# The hub commit each MOMENT checkpoint is pinned to (moment.revision). The hub is out of reach
# where this project is built, so the ids come from public projects that pin these checkpoints
# (their Hugging Face cache snapshot folders, which are named by commit); the table is what lets
# a revision meant for one checkpoint be refused for another.
HUB_REVISIONS: dict[str, str] = {
    "AutonLab/MOMENT-1-small": "411e288267f82cce86296dbe4d6c8bc533cc162f",
    "AutonLab/MOMENT-1-base": "5e44b0ea26376a176360f87831124e018f876d96",
    "AutonLab/MOMENT-1-large": "ca58581bc7bea2ebed4e80dc0a3e4b8b609c6ecc",
}


def is_hub_id(checkpoint: str) -> bool:
    """A hub id (owner/name) rather than random-init:<size> or a local directory."""
    if checkpoint.startswith("random-init:") or Path(checkpoint).expanduser().is_dir():
        return False
    return bool(HUB_ID.match(checkpoint))


# flan-t5 encoder dimensions that MOMENT-1-small/base/large are built on; "tiny" is for tests,
# "mini" (0.67 M parameters) the size this project pretrains on 2 CPU cores
T5_SIZES: dict[str, dict] = {
    "tiny": {"d_model": 64, "d_ff": 128, "d_kv": 16, "num_heads": 4, "num_layers": 2, "vocab_size": 64},
    "mini": {"d_model": 128, "d_ff": 256, "d_kv": 32, "num_heads": 4, "num_layers": 4, "vocab_size": 64},
    "small": {"d_model": 512, "d_ff": 1024, "d_kv": 64, "num_heads": 6, "num_layers": 8, "vocab_size": 32128},
    "base": {"d_model": 768, "d_ff": 2048, "d_kv": 64, "num_heads": 12, "num_layers": 12, "vocab_size": 32128},
    "large": {"d_model": 1024, "d_ff": 2816, "d_kv": 64, "num_heads": 16, "num_layers": 24, "vocab_size": 32128},
}


Origin = Literal["hub", "here", "random-init"]


@dataclass
class ModelInfo:
    """What every output records about the weights it used."""

    checkpoint: str
    origin: Origin
    source: str  # hub | local | random-init: where the files were read from
    path: str
    parameters: int
    trainable_parameters: int
    revision: str | None = None
    # origin "here": what the pretrain stage's marker says (corpus, steps, samples, minutes)
    pretraining: dict[str, Any] | None = None
    size: str | None = None  # tiny | mini | small | base | large, where known

    def to_dict(self) -> dict:
        return asdict(self)


def read_marker(folder: Path) -> dict[str, Any]:
    """This project's marker beside a checkpoint it wrote ({} for any other checkpoint)."""
    path = folder / MARKER
    if not path.is_file():
        return {}
    try:
        marker = json.loads(path.read_text())
    except json.JSONDecodeError:
        raise InputError(f"{path}: not valid JSON; delete the folder and rebuild it") from None
    if "origin" not in marker:  # written before origins had names
        marker["origin"] = "random-init" if marker.get("pretrained") is False else "hub"
    return marker


def moment_config(size: str) -> dict:
    """The MOMENTPipeline config dict of a MOMENT-1-<size>-shaped model."""
    dims = T5_SIZES[size]
    t5 = {
        "model_type": "t5", "architectures": ["T5ForConditionalGeneration"],
        "d_model": dims["d_model"], "d_ff": dims["d_ff"], "d_kv": dims["d_kv"],
        "num_heads": dims["num_heads"], "num_layers": dims["num_layers"],
        "num_decoder_layers": dims["num_layers"], "vocab_size": dims["vocab_size"],
        "feed_forward_proj": "gated-gelu", "dense_act_fn": "gelu_new", "is_gated_act": True,
        "dropout_rate": 0.1, "layer_norm_epsilon": 1e-6, "initializer_factor": 1.0,
        "relative_attention_num_buckets": 32, "relative_attention_max_distance": 128,
        "is_encoder_decoder": False, "use_cache": False, "pad_token_id": 0, "eos_token_id": 1,
        "decoder_start_token_id": 0, "tie_word_embeddings": False,
    }  # fmt: skip
    return {
        "task_name": "reconstruction",
        "model_name": "MOMENT",
        "transformer_type": "encoder_only",
        "d_model": dims["d_model"],
        "seq_len": 512,
        "patch_len": 8,
        "patch_stride_len": 8,
        "device": "cpu",
        "transformer_backbone": f"google/flan-t5-{size}",
        "model_kwargs": {},
        "t5_config": t5,
    }


def _quiet_import():
    # transformers 4.33 on torch 2.13 warns about a renamed pytree helper at import time.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        from momentfm import MOMENTPipeline
    return MOMENTPipeline


def _from_pretrained(ref: str, revision: str | None = None, **kwargs):
    MOMENTPipeline = _quiet_import()
    # huggingface_hub prints "Loading weights from local directory" on stdout.
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        model = MOMENTPipeline.from_pretrained(
            ref, revision=revision, model_kwargs={"task_name": "reconstruction"}, **kwargs
        )
    model.init()
    return model.eval()  # inference by default; training code switches to train() itself


def write_random_init(size: str, seed: int, directory: Path) -> Path:
    """Build MOMENT-<size> with weights drawn from ``seed`` and save it as a local checkpoint."""
    import shutil
    import tempfile

    MOMENTPipeline = _quiet_import()
    directory.parent.mkdir(parents=True, exist_ok=True)
    # a private temporary folder: two processes writing the same checkpoint never mix files
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.tmp-", dir=directory.parent))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = MOMENTPipeline(moment_config(size), model_kwargs={"task_name": "reconstruction"})
    model.save_pretrained(tmp)
    (tmp / MARKER).write_text(json.dumps({"origin": "random-init", "size": size, "seed": seed}))
    os.chmod(tmp, 0o755)
    if (directory / "model.safetensors").is_file():  # another process finished it first: same weights
        shutil.rmtree(tmp, ignore_errors=True)
        return directory
    shutil.rmtree(directory, ignore_errors=True)
    try:
        os.replace(tmp, directory)
    except OSError:  # lost a race to an identical checkpoint
        shutil.rmtree(tmp, ignore_errors=True)
    return directory


def load_moment(
    checkpoint: str,
    seed: int,
    cache_dir: str | Path = ".cache/models",
    revision: str | None = None,
    offline: bool = False,
) -> tuple[torch.nn.Module, ModelInfo]:
    """Load MOMENT (reconstruction head) from ``checkpoint``; see the module docstring."""
    if not isinstance(checkpoint, str) or not checkpoint:
        raise InputError("params.yaml: moment.checkpoint is empty; use a hub id, a directory or random-init:<size>")
    if checkpoint.startswith("random-init:"):
        size = checkpoint.split(":", 1)[1]
        if size not in T5_SIZES:
            raise InputError(
                f"params.yaml: moment.checkpoint={checkpoint!r}; size must be one of {', '.join(T5_SIZES)}"
            )
        directory = Path(cache_dir) / f"random-init-{size}-seed{seed}"
        if not (directory / "model.safetensors").is_file():
            log.info("writing random-init MOMENT-%s checkpoint to %s", size, directory)
            write_random_init(size, seed, directory)
        model = _from_pretrained(str(directory))
        return model, _info(model, checkpoint, "random-init", "random-init", str(directory), None, size=size)

    path = Path(checkpoint).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise InputError(f"{path}: no config.json; point moment.checkpoint at a save_pretrained directory")
        _require_safetensors(path, checkpoint)
        marker = read_marker(path)
        model = _from_pretrained(str(path))
        pretraining = marker.get("pretraining") if marker.get("origin") == "here" else None
        return model, _info(model, checkpoint, marker.get("origin", "hub"), "local", str(path), None, pretraining,
                            marker.get("size"))  # fmt: skip

    if not HUB_ID.match(checkpoint):
        raise InputError(
            f"params.yaml: moment.checkpoint={checkpoint!r} is neither a directory, a hub id "
            "(owner/name) nor random-init:<size>"
        )
    try:
        # Fetch config.json first: the hub mixin swallows a failed config download and then
        # fails with an unrelated TypeError.
        from huggingface_hub import hf_hub_download

        config = hf_hub_download(checkpoint, "config.json", revision=revision, local_files_only=offline)
    except Exception as e:  # hub errors come as OSError, HTTP, connection or entry-not-found types
        why = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise InputError(
            f"moment.checkpoint={checkpoint}: not reachable on the Hugging Face hub and not in the "
            f"local cache ({type(e).__name__}: {why}). Either download it where the hub is "
            f"reachable (`huggingface-cli download {checkpoint} --local-dir DIR`) and set "
            "moment.checkpoint to DIR, or set moment.checkpoint to random-init:<size> "
            "(random weights: not foundation-model results)"
        ) from None
    snapshot = Path(config).parent
    try:  # only the safetensors file: never the pickle-based pytorch_model.bin the hub mixin falls back to
        hf_hub_download(checkpoint, "model.safetensors", revision=revision, local_files_only=offline)
    except Exception:
        pass  # reported below, naming the snapshot
    _require_safetensors(snapshot, checkpoint)
    model = _from_pretrained(str(snapshot))
    # the snapshot folder is named by the commit it holds: record that, not "main" or a tag
    return model, _info(model, checkpoint, "hub", "hub", str(snapshot), snapshot.name)


def _require_safetensors(folder: Path, checkpoint: str) -> None:
    """Weights load from model.safetensors only: a pickle file (pytorch_model.bin) is refused."""
    if not (folder / "model.safetensors").is_file():
        pickles = [p.name for p in folder.glob("*.bin")] + [p.name for p in folder.glob("*.pt")]
        found = f" (it has {', '.join(pickles)}: pickle files are never loaded)" if pickles else ""
        raise InputError(
            f"moment.checkpoint={checkpoint}: {folder} has no model.safetensors{found}; momentad loads "
            "safetensors weights only — convert once where you trust the file, e.g. with "
            "safetensors.torch.save_file"
        )


def _info(model, checkpoint, origin, source, path, revision, pretraining=None, size=None) -> ModelInfo:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return ModelInfo(checkpoint, origin, source, path, total, trainable, revision, pretraining, size)
