"""Self-supervised pretraining: NT-Xent, views, ``musicbench pretrain`` (resume after a kill,
the test part never read, bad input, MLflow), and pretrained backbones in the deep family.

Everything runs for real on small data: the synthetic task and folders of generated audio,
the CLI in a subprocess where it is killed, MLflow in the session's temporary store.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from musicbench.cli import main
from musicbench.errors import ConfigError
from musicbench.systems import build_system
from musicbench.systems.deep.checkpoint import load_checkpoint
from musicbench.systems.deep.contrastive import VIEWS, check_views, make_view, nt_xent

from helpers import REPO

TASK = "synth_genre:mini"
TINY = ["--set", "width=4", "--set", "n_blocks=2", "--set", "chunk_seconds=0.5"]


def write_folder(folder: Path, n: int, seconds: float = 2.0, sr: int = 22050) -> Path:
    """``n`` short clips of tones and noise bursts, each different."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * sr)) / sr
    for i in range(n):
        f0 = 110 * 2 ** (i / 7)
        y = 0.3 * np.sin(2 * np.pi * f0 * t) * np.exp(-t * (1 + i % 4))
        y += 0.05 * rng.standard_normal(len(t)) * (i % 3 == 0)
        sf.write(folder / f"clip{i:02d}.wav", y.astype(np.float32), sr)
    return folder


# -- the loss and the views ------------------------------------------------------------------


def test_nt_xent_matches_the_direct_formula():
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(5, 8, generator=g), torch.randn(5, 8, generator=g)
    tau = 0.3
    z = torch.nn.functional.normalize(torch.cat([z1, z2]), dim=1)
    n = len(z1)
    terms = []
    for i in range(2 * n):
        j = (i + n) % (2 * n)
        others = [k for k in range(2 * n) if k != i]
        denom = sum(torch.exp(z[i] @ z[k] / tau) for k in others)
        terms.append(-torch.log(torch.exp(z[i] @ z[j] / tau) / denom))
    assert nt_xent(z1, z2, tau).item() == pytest.approx(torch.stack(terms).mean().item(), rel=1e-5)


def test_nt_xent_is_lower_for_matching_pairs():
    g = torch.Generator().manual_seed(1)
    z1 = torch.randn(16, 32, generator=g)
    close = z1 + 0.05 * torch.randn(16, 32, generator=g)
    unrelated = torch.randn(16, 32, generator=g)
    assert nt_xent(z1, close, 0.1) < nt_xent(z1, unrelated, 0.1) - 1.0
    assert nt_xent(z1, close, 0.1) < np.log(2 * 16 - 1)  # chance level


def test_views_are_seeded_and_differ_between_seeds():
    clip = np.random.default_rng(0).standard_normal(22050 * 3).astype(np.float32)
    views = ("crop", "gain", "polarity", "noise", "eq", "pitch", "stretch")
    a = make_view(clip, 11025, views, 22050, seed=7)
    assert a.shape == (11025,) and a.dtype == np.float32 and np.isfinite(a).all()
    np.testing.assert_array_equal(a, make_view(clip, 11025, views, 22050, seed=7))
    assert not np.allclose(a, make_view(clip, 11025, views, 22050, seed=8))
    # without any view a chunk is the clip's start, untouched
    np.testing.assert_array_equal(make_view(clip, 100, (), 22050, seed=3), clip[:100])
    # a crop alone moves the chunk; a polarity flip alone is the chunk negated or not
    crops = {make_view(clip, 100, ("crop",), 22050, seed=s)[0] for s in range(5)}
    assert len(crops) > 1
    # a clip shorter than the view is shifted: all of it, at a random offset
    short = clip[:40]
    shifted = [make_view(short, 100, ("crop",), 22050, seed=s) for s in range(5)]
    offsets = [int(np.flatnonzero(v)[0]) for v in shifted]
    assert len(set(offsets)) > 1
    assert all(np.array_equal(v[o: o + 40], short) for v, o in zip(shifted, offsets, strict=True))
    flipped = [make_view(clip, 100, ("polarity",), 22050, seed=s) for s in range(8)]
    assert all(np.array_equal(f, clip[:100]) or np.array_equal(f, -clip[:100]) for f in flipped)
    assert any(np.array_equal(f, -clip[:100]) for f in flipped)


def test_unknown_view_is_refused_with_the_valid_names():
    with pytest.raises(ConfigError, match="valid: crop, gain, polarity"):
        check_views(["crop", "reverb"])
    assert check_views(["noise", "crop"]) == ("crop", "noise")
    assert set(VIEWS) >= {"crop", "gain", "polarity", "pitch", "stretch", "eq", "noise"}


# -- the command ------------------------------------------------------------------------------


def pretrain_cmd(out: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "musicbench", "pretrain", "--backbone", "cnn1d-small", *TINY,
            "--out", str(out), "--no-mlflow", *args]


def test_a_killed_run_resumes_and_ends_with_the_same_weights(tmp_path):
    folder = write_folder(tmp_path / "audio", 24)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    common = ["--folder", str(folder), "--epochs", "10", "--batch-size", "8"]
    killed = tmp_path / "killed.pt"
    state = Path(f"{killed}.resume")
    proc = subprocess.Popen(pretrain_cmd(killed, *common), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not state.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not killed.exists()
    reached = torch.load(state, weights_only=True)["epoch"]
    assert 1 <= reached < 10

    again = subprocess.run(pretrain_cmd(killed, *common), env=env, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert f"resumed after epoch {reached} of 10" in again.stdout

    straight = tmp_path / "straight.pt"
    whole = subprocess.run(pretrain_cmd(straight, *common), env=env, capture_output=True, text=True)
    assert whole.returncode == 0, whole.stderr
    assert "resumed" not in whole.stdout
    a, b = (torch.load(p, weights_only=True)["state_dict"] for p in (killed, straight))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    card_a, card_b = (json.loads(p.with_suffix(".json").read_text()) for p in (killed, straight))
    assert card_a["loss"] == card_b["loss"] and len(card_a["loss"]) == 10
    assert card_a["weights_digest"] == card_b["weights_digest"]


def test_pretraining_on_a_fold_never_reads_its_test_part(tmp_path, capsys, monkeypatch):
    """Fold 0's test audio is replaced with loud noise on a private copy of the data: the
    pretrained weights are identical, and the clips whose audio was decoded (into a fresh
    feature cache) are exactly the fold's train and valid clips. Replacing one training
    clip changes the weights (control)."""
    from musicbench.features import extract
    from musicbench.protocol.experiment import resolve_split
    from musicbench.tasks import get_task

    source = Path(get_task(TASK).dataset.data_home)
    data = tmp_path / "data"
    shutil.copytree(source, data / "synth_genre" / source.name)
    clipset = get_task(TASK, data_home=str(data)).clips()
    fold = resolve_split("group-kfold:performer", clipset).folds[0]
    rng = np.random.default_rng(0)

    def noise(track_id: str) -> None:
        path = clipset.by_id[track_id].path
        assert path.startswith(str(data))
        info = sf.info(path)
        sf.write(path, rng.uniform(-0.9, 0.9, info.frames).astype(np.float32), info.samplerate)

    def digest(name: str, *args: str) -> str:
        out = tmp_path / f"{name}.pt"
        assert main(["pretrain", "--backbone", "cnn1d-small", *TINY, "--task", TASK, "--protocol",
                     "group-kfold:performer", "--fold", "0", "--epochs", "1", "--out", str(out),
                     "--no-mlflow", *args]) == 0
        card = json.loads(out.with_suffix(".json").read_text())
        assert card["data"]["clips"] == len(fold.train) + len(fold.valid)
        return card["weights_digest"]

    real = digest("real")
    for track_id in fold.test:
        noise(track_id)
    decoded, load = [], extract.load_audio

    def recording(path, track_id, policy):
        decoded.append(track_id)
        return load(path, track_id, policy)

    monkeypatch.setenv("MUSICBENCH_CACHE", str(tmp_path / "fresh-cache"))
    monkeypatch.setenv("MUSICBENCH_JOBS", "1")  # clips decoded in this process, where they are recorded
    monkeypatch.setattr(extract, "load_audio", recording)
    assert digest("noisy-test", "--data-home", str(data)) == real
    assert sorted(set(decoded)) == sorted(fold.train + fold.valid)
    noise(fold.train[0])
    assert digest("control", "--data-home", str(data)) != real


@pytest.mark.parametrize("args, message", [
    (["--backbone", "no-such-net", "--folder", "{audio}"], "no-such-net"),
    (["--backbone", "mfcc-stats-svm", "--folder", "{audio}"], "has no backbone to pretrain"),
    (["--backbone", "cnn1d-small", "--folder", "{empty}"], "0 audio file"),
    (["--backbone", "cnn1d-small", "--folder", "{audio}", "--views", "crop,reverb"], "--views crop,reverb"),
    (["--backbone", "cnn1d-small", "--task", TASK, "--parts", "train,test"], "never its test part"),
    (["--backbone", "cnn1d-small", "--task", TASK, "--fold", "9"], "folds 0..3"),
    (["--backbone", "cnn1d-small", "--folder", "{audio}", "--temperature", "0"], "temperature"),
    (["--backbone", "cnn1d-small", "--folder", "{audio}", "--device", "cuda:7"], "cuda:7"),
])
def test_bad_input_exits_2_before_any_work(tmp_path, capsys, args, message):
    write_folder(tmp_path / "audio", 2, seconds=0.5)
    (tmp_path / "empty").mkdir()
    out = tmp_path / "out.pt"
    argv = [a.format(audio=tmp_path / "audio", empty=tmp_path / "empty") for a in args]
    assert main(["pretrain", *argv, "--out", str(out), "--no-mlflow"]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists() and not Path(f"{out}.resume").exists()


def test_run_is_logged_to_mlflow_with_loss_and_throughput(tmp_path, capsys):
    from mlflow import MlflowClient

    from musicbench.results.tracking import default_tracking_uri

    folder = write_folder(tmp_path / "audio", 6, seconds=1.0)
    out = tmp_path / "logged.pt"
    assert main(["pretrain", "--backbone", "cnn1d-small", *TINY, "--folder", str(folder), "--epochs", "3",
                 "--batch-size", "4", "--views", "crop,gain,polarity", "--out", str(out)]) == 0
    card = json.loads(out.with_suffix(".json").read_text())
    client = MlflowClient(default_tracking_uri())
    exp = client.get_experiment_by_name("pretrain")
    runs = client.search_runs([exp.experiment_id], f"tags.weights_digest = '{card['weights_digest']}'")
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.data.params["views"] == "['crop', 'gain', 'polarity']"
    losses = client.get_metric_history(run.info.run_id, "loss")
    assert [m.step for m in losses] == [1, 2, 3]
    assert [m.value for m in losses] == pytest.approx(card["loss"])
    assert client.get_metric_history(run.info.run_id, "x_realtime")[0].value > 0
    assert {a.path for a in client.list_artifacts(run.info.run_id)} == {"logged.pt", "logged.json"}
    assert card["data"]["clips"] == 6 and card["views"] == ["crop", "gain", "polarity"]
    assert card["code_version"] and card["epochs"] == 3


# -- pretrained backbones in the deep family ---------------------------------------------------


@pytest.fixture(scope="module")
def backbone(tmp_path_factory):
    folder = write_folder(tmp_path_factory.mktemp("ssl") / "audio", 8)
    out = folder.parent / "backbone.pt"
    assert main(["pretrain", "--backbone", "cnn1d-small", "--folder", str(folder), "--epochs", "2",
                 "--batch-size", "4", "--out", str(out), "--no-mlflow"]) == 0
    return out


def body_state(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in net.state_dict().items() if not k.startswith("head.")}


@pytest.mark.parametrize("freeze", [True, False])
def test_init_starts_from_the_backbone_and_freeze_keeps_it(backbone, synth_fold, freeze):
    train, valid, _ = synth_fold
    pretrained = body_state(load_checkpoint(backbone)[0])
    system = build_system("cnn1d-small", init=str(backbone), freeze=freeze, max_epochs=2).fit(train, valid)
    after = body_state(system.trainer_.model)
    same = all(torch.equal(pretrained[k], after[k]) for k in pretrained)
    assert same == freeze  # frozen: weights and batch-norm statistics untouched; else fine-tuned
    assert system.training_report()["init"]["checkpoint"] == str(backbone)
    assert len(system.history_) == 2


def test_a_reference_network_pretrains_and_starts_a_frozen_probe(tmp_path, synth_fold):
    """Any deep model is a backbone: the published SampleCNN, pretrained, then frozen."""
    folder = write_folder(tmp_path / "audio", 4, seconds=4.0, sr=16000)
    out = tmp_path / "samplecnn-ref.pt"
    assert main(["pretrain", "--backbone", "samplecnn-ref", "--folder", str(folder), "--epochs", "1",
                 "--batch-size", "4", "--views", "crop,gain", "--out", str(out), "--no-mlflow"]) == 0
    pretrained = body_state(load_checkpoint(out)[0])
    fresh = build_system("samplecnn-ref")
    torch.manual_seed(fresh.seed)
    initial = body_state(fresh.build_network(1, fresh.input_spec(16000)))
    assert any(not torch.equal(initial[k], pretrained[k]) for k in pretrained)  # it learnt
    train, valid, _ = synth_fold
    system = build_system("samplecnn-ref", init=str(out), freeze=True, max_epochs=1,
                          batch_size=16).fit(train, valid)
    after = body_state(system.trainer_.model)
    assert all(torch.equal(pretrained[k], after[k]) for k in pretrained)


def test_init_refuses_a_missing_checkpoint_and_a_mismatched_backbone(backbone, synth_fold):
    train, valid, _ = synth_fold
    with pytest.raises(ConfigError, match="init='nowhere.pt' must be .* existing checkpoint"):
        build_system("cnn1d-small", init="nowhere.pt")
    with pytest.raises(ConfigError, match="freeze=true needs init"):
        build_system("cnn1d-small", freeze=True)
    with pytest.raises(ConfigError, match="cannot start a cnn2d"):
        build_system("cnn2d-small", init=str(backbone), max_epochs=1).fit(train, valid)


def test_ssl_init_pretrains_once_per_training_part(synth_fold, monkeypatch, tmp_path):
    monkeypatch.setenv("MUSICBENCH_CACHE", str(tmp_path))
    train, valid, test = synth_fold
    params = dict(init="ssl", freeze=True, pretrain_epochs=1, max_epochs=1, width=4, n_blocks=2)
    first = build_system("cnn1d-small", **params).fit(train, valid)
    saved = sorted((tmp_path / "pretrained").glob("*.pt"))
    assert len(saved) == 1
    again = build_system("cnn1d-small", **params).fit(train, valid)
    assert sorted((tmp_path / "pretrained").glob("*.pt")) == saved  # reused, not pretrained again
    np.testing.assert_array_equal(first.predict_scores(test), again.predict_scores(test))
    meta = load_checkpoint(saved[0])[2]
    assert meta["pretrain"]["clips"] == len(train) + len(valid)
    build_system("cnn1d-small", **{**params, "pretrain_epochs": 0}).fit(train, valid)
    assert len(list((tmp_path / "pretrained").glob("*.pt"))) == 2  # random init: its own entry
