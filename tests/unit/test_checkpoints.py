"""Checkpoints rebuild their network from the spec they store: without the system classes,
and from the parameters of the earlier format."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from musicbench.errors import ConfigError
from musicbench.systems.deep.checkpoint import encoder_family, load_checkpoint
from musicbench.systems.deep.system import DeepSystem


@pytest.fixture(scope="module")
def saved(synth_fold, tmp_path_factory):
    train, valid, _ = synth_fold
    system = DeepSystem(model="cnn2d", max_epochs=1, width=4, n_blocks=2, channels=[4, 6]).fit(train, valid)
    return system.save(tmp_path_factory.mktemp("ckpt") / "cnn2d.pt")


def _outputs(net: torch.nn.Module) -> torch.Tensor:
    torch.manual_seed(1)
    return net(torch.randn(3, 64, 80)).detach()


def test_loading_needs_neither_the_system_classes_nor_the_family_table(saved):
    code = ("import sys, torch\n"
            "from musicbench.systems.deep.checkpoint import load_checkpoint\n"
            f"net, spec, meta = load_checkpoint({str(saved)!r})\n"
            "loaded = [m for m in ('musicbench.systems.deep.system', 'musicbench.systems.metric', "
            "'musicbench.systems.classical') if m in sys.modules]\n"
            "print(meta['network']['build'], type(net).__name__, spec.kind, loaded)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["musicbench.systems.deep.netspec:build_net", "ChunkClassifier", "logmel", "[]"]


def test_the_stored_spec_is_the_systems_network(saved):
    net, spec, meta = load_checkpoint(saved)
    assert meta["format"] == 3 and encoder_family(meta) == "deep"
    assert meta["network"]["args"]["settings"]["channels"] == [4, 6]
    rebuilt = DeepSystem(**meta["params"]).build_network(len(meta["classes"]), spec)
    rebuilt.load_state_dict(net.state_dict())
    assert torch.equal(_outputs(rebuilt.eval()), _outputs(net))


def _rewritten(saved, tmp_path, **meta_changes) -> object:
    blob = torch.load(saved, map_location="cpu", weights_only=True)
    meta = {k: v for k, v in json.loads(blob["meta"]).items() if k not in ("network", "encoder")}
    meta.update(meta_changes)
    path = tmp_path / "old.pt"
    torch.save({"state_dict": blob["state_dict"], "meta": json.dumps(meta)}, path)
    return path


def test_format_2_checkpoints_load_from_their_parameters(saved, tmp_path):
    net, _, _ = load_checkpoint(saved)
    old, spec, meta = load_checkpoint(_rewritten(saved, tmp_path, format=2, family="deep"))
    assert torch.equal(_outputs(old), _outputs(net)) and encoder_family(meta) == "deep"
    with pytest.raises(ConfigError, match="a metric checkpoint of format 2 cannot be read"):
        load_checkpoint(_rewritten(saved, tmp_path, format=2, family="metric"))
    with pytest.raises(ConfigError, match=r"format 1, expected one of \(2, 3\)"):
        load_checkpoint(_rewritten(saved, tmp_path, format=1))
