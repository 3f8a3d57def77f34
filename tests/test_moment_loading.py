"""Every route by which MOMENT is loaded, and what each says about its weights."""

import json
import shutil

import pytest
import torch

from momentad.detectors.moment.weights import MARKER, load_moment, write_random_init
from momentad.errors import InputError


def weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_random_init_is_seeded_and_marked(tmp_path):
    a, info = load_moment("random-init:tiny", seed=3, cache_dir=tmp_path)
    b, _ = load_moment("random-init:tiny", seed=3, cache_dir=tmp_path / "other")
    c, _ = load_moment("random-init:tiny", seed=4, cache_dir=tmp_path)
    wa, wb, wc = weights(a), weights(b), weights(c)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)
    assert info.origin == "random-init" and info.source == "random-init" and info.size == "tiny"
    assert info.parameters == sum(p.numel() for p in a.parameters()) > 0
    assert (tmp_path / "random-init-tiny-seed3" / "model.safetensors").is_file()
    # MOMENT's own freezing: only the reconstruction head trains by default
    assert 0 < info.trainable_parameters < info.parameters


def test_small_mirrors_moment_1_small_dimensions():
    from momentad.detectors.moment.weights import moment_config

    cfg = moment_config("small")
    assert cfg["t5_config"]["d_model"] == cfg["d_model"] == 512
    assert cfg["t5_config"]["num_layers"] == 8 and cfg["seq_len"] == 512 and cfg["patch_len"] == 8
    assert moment_config("large")["t5_config"]["num_layers"] == 24


def test_local_directory_round_trip(tmp_path):
    src = write_random_init("tiny", 5, tmp_path / "ckpt")
    model, info = load_moment(str(src), seed=0)
    assert info.source == "local" and info.origin == "random-init"  # the marker travels with it
    reference, _ = load_moment("random-init:tiny", seed=5, cache_dir=tmp_path / "cache")
    ref = weights(reference)
    assert all(torch.equal(v, ref[k]) for k, v in weights(model).items())
    x = torch.randn(2, 1, 512)
    out = model(x_enc=x, input_mask=torch.ones(2, 512)).reconstruction
    assert out.shape == (2, 1, 512)
    # a directory without our marker (e.g. `huggingface-cli download`) counts as pretrained elsewhere
    copy = tmp_path / "downloaded"
    shutil.copytree(src, copy)
    (copy / MARKER).unlink()
    _, info2 = load_moment(str(copy), seed=0)
    assert info2.origin == "hub"
    assert json.loads((src / MARKER).read_text())["origin"] == "random-init"


def test_unreachable_hub_id_names_both_alternatives(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache
    with pytest.raises(InputError) as e:
        load_moment("AutonLab/MOMENT-1-large", seed=0, offline=True)
    msg = str(e.value)
    assert "not reachable" in msg and "huggingface-cli download" in msg and "random-init:<size>" in msg


@pytest.mark.parametrize("bad", ["random-init:huge", "no/such/dir/here", ""])
def test_bad_checkpoint_values(bad):
    with pytest.raises(InputError, match="moment.checkpoint"):
        load_moment(bad, seed=0)
