"""Probes: encoder embeddings through the extractor seam and its cache, head selection on
the validation part, own deep systems as encoders, and encoder provenance in results."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from musicbench.encoders import build_encoder
from musicbench.encoders.extractor import EncoderExtractor, resample
from musicbench.errors import ConfigError, UnknownNameError
from musicbench.features import FeatureCache, extract_frames
from musicbench.systems import build_system
from musicbench.systems.deep.checkpoint import load_checkpoint
from musicbench.systems.deep.system import DeepSystem
from musicbench.tasks import ClipData


def test_embeddings_are_cached_by_content_and_weight_digest(synth_fold, tmp_path):
    _, valid, _ = synth_fold
    cache = FeatureCache(tmp_path / "cache")
    ex = EncoderExtractor("musicnn-mtt", valid.sample_rate)
    assert ex.config()["weights_digest"] == build_encoder("musicnn-mtt").card().weights_digest
    first = extract_frames(valid, [ex], cache)
    entries = sorted((tmp_path / "cache").rglob("*.npy"))
    assert len(entries) == len(valid)
    assert all(f.shape[1] == 753 and np.isfinite(f).all() for f in first)
    # a 3 s clip is one musicnn patch; the extractor gives exactly what the encoder gives
    audio = torch.from_numpy(resample(valid.audio(0), valid.sample_rate, 16000))[None]
    np.testing.assert_allclose(first[0], ex.encoder.timestamps(audio)[0][0].numpy(), rtol=1e-4, atol=1e-4)
    entries[0].write_bytes(entries[0].read_bytes()[:100])  # corrupt one entry
    again = extract_frames(valid, [EncoderExtractor("musicnn-mtt", valid.sample_rate)], cache)
    assert cache.rebuilt == 1
    for a, b in zip(first, again, strict=True):  # one re-encoded alone, not in a batch
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-4)
    assert sum(np.array_equal(a, b) for a, b in zip(first, again, strict=True)) >= len(first) - 1
    other = EncoderExtractor("musicnn-msd", valid.sample_rate)
    assert other.config()["weights_digest"] != ex.config()["weights_digest"]


def test_deformations_apply_before_encoding(synth_fold, tmp_path):
    _, valid, _ = synth_fold
    part = valid.without_labels()
    part.clips = part.clips[:2]
    ex = EncoderExtractor("aisfx", part.sample_rate)
    clean = extract_frames(part, [ex], FeatureCache(tmp_path))
    noisy = extract_frames(part, [ex], FeatureCache(tmp_path), transform="noise:0")
    assert all(not np.allclose(a, b) for a, b in zip(clean, noisy, strict=True))


def test_resampling_keeps_duration():
    x = np.random.default_rng(0).standard_normal(22050).astype(np.float32)
    assert len(resample(x, 22050, 16000)) == 16000 and len(resample(x, 22050, 44100)) == 44100


def test_probe_picks_the_head_on_validation_then_refits(synth_fold):
    train, valid, test = synth_fold
    probe = build_system("aisfx-probe").fit(train, valid)
    report = probe.training_report()
    grid = [row["C"] for row in report["selection"]]
    assert grid == [0.1, 1.0, 10.0, 100.0]
    best = max(report["selection"], key=lambda row: row["valid_accuracy"])
    assert report["chosen"] == {"C": best["C"]}
    assert probe.model_[-1].C == best["C"]
    assert probe.model_[-1].support_.size <= len(train) + len(valid)  # refitted on both parts
    scores = probe.predict_scores(test.without_labels())
    assert np.mean(scores.argmax(axis=1) == test.y) >= 0.6  # 6 classes, chance 0.17
    single = build_system("aisfx-probe", C=3.0).fit(train, valid)
    assert single.training_report()["selection"] == [] and single.chosen_ == {"C": 3.0}


@pytest.mark.parametrize("head", ["linear", "mlp"])
def test_torch_heads_learn_and_are_deterministic(synth_fold, head):
    train, valid, test = synth_fold
    params = {"classifier": head, "lr": [1e-3, 1e-2], "weight_decay": 1e-4, "summary": "meanmax"}
    a = build_system("musicnn-mtt-probe", **params).fit(train, valid)
    keys = [sorted(row) for row in a.training_report()["selection"]]
    assert keys == [["lr", "valid_accuracy", "weight_decay"]] * 2
    scores = a.predict_scores(test.without_labels())
    assert np.allclose(scores.sum(axis=1), 1.0) and np.mean(scores.argmax(axis=1) == test.y) >= 0.6
    b = build_system("musicnn-mtt-probe", **params).fit(train, valid)
    np.testing.assert_array_equal(b.predict_scores(test.without_labels()), scores)


def test_several_encoders_and_front_ends_concatenate(synth_fold):
    train, valid, test = synth_fold
    probe = build_system("aisfx-mfcc-probe").fit(train, valid)
    x = probe._summarise(probe.sources(test))
    assert x.shape == (len(test), 2 * 512 + 2 * 40)  # aisfx mean/std + MFCC-20 and deltas mean/std
    assert [c["name"] for c in probe.training_report()["encoders"]] == ["aisfx"]


def test_bad_probe_parameters_are_refused_before_work(synth_fold):
    train, valid, _ = synth_fold
    with pytest.raises(ConfigError, match=r"encoders=\['no-such-encoder'\] must be .*aisfx"):
        build_system("aisfx-probe", encoders=["no-such-encoder"])
    with pytest.raises(ConfigError, match="needs at least one encoder or front end"):
        build_system("aisfx-probe", encoders=[])
    with pytest.raises(ConfigError, match=r"C=\[1.0, -1.0\] must be .*non-empty list"):
        build_system("aisfx-probe", C=[1.0, -1.0])
    with pytest.raises(UnknownNameError):
        build_system("aisfx-probe", no_such=1)


def test_deep_checkpoint_round_trip_and_penultimate_encoder(synth_fold, tmp_path):
    """The saved network loads with weights_only=True and, as an encoder, gives the exact
    input of the fitted head: the head applied to it reproduces the system's scores. With
    non-overlapping chunks, a 3 s clip is two whole 1.5 s chunks, so the system's chunks
    (the last one aligned to the clip's end) are the encoder's (on the grid, the last one
    padded)."""
    train, valid, test = synth_fold
    system = DeepSystem(model="cnn1d", max_epochs=2, width=8, n_blocks=2, eval_overlap=0.0).fit(train, valid)
    path = system.save(tmp_path / "cnn1d.pt")
    blob = torch.load(path, map_location="cpu", weights_only=True)
    assert json.loads(blob["meta"])["classes"] == list(train.classes)
    net, _, meta = load_checkpoint(path)
    assert meta["task"] == train.task.ref and meta["params"]["width"] == 8
    ws = tmp_path / "ws"
    (ws / "encoders").mkdir(parents=True)
    (ws / "encoders" / "mine.toml").write_text(
        f'description = "mine"\nfamily = "deep"\nlicence = "own"\n[params]\ncheckpoint = "{path}"\n')
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MUSICBENCH_WORKSPACE", str(ws))
        enc = build_encoder("mine")
    one = ClipData(test.task, test.clips[:1], test.classes, test.kind)
    wave = torch.from_numpy(np.asarray(one.audio(0), dtype=np.float32))[None]
    emb, times = enc.timestamps(wave)
    assert emb.shape[2] == enc.timestamp_embedding_size == net.embedding_size and times.shape == emb.shape[:2]
    assert wave.shape[1] == 3 * enc.sample_rate and emb.shape[1] == 2
    probs = torch.softmax(enc.net.head.linear(emb[0]), dim=1).mean(dim=0).double().numpy()
    expected = system.predict_scores(one)[0]
    np.testing.assert_allclose(probs, expected, rtol=1e-4, atol=1e-6)
    assert enc.card().weights_digest and "cnn1d" in enc.card().source


def test_unfitted_or_missing_checkpoints_are_clear(tmp_path):
    with pytest.raises(ConfigError, match="call fit first"):
        DeepSystem().save(tmp_path / "x.pt")
    with pytest.raises(ConfigError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="not a musicbench deep-system checkpoint"):
        load_checkpoint(tmp_path / "bad.pt")


def test_encoder_cards_reach_the_cell_json_and_mlflow(tmp_path):
    from mlflow import MlflowClient

    from musicbench.runner.execute import Runner, RunOptions
    from musicbench.runner.suite import Suite

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    suite = Suite("probe-cards", ("synth_genre:mini",), ("aisfx-probe",), ("group-kfold:performer:2",))
    runner = Runner(suite, RunOptions(out=tmp_path / "out", quiet=True, tracking_uri=uri))
    runner.run()
    rec = runner.store.records()[0]
    assert rec.ok, rec.error
    cell = json.loads((tmp_path / "out" / "cells" / f"{rec.cell_key}.json").read_text())
    card = cell["details"]["training"]["encoders"][0]
    digest = build_encoder("aisfx").card().weights_digest
    assert card["name"] == "aisfx" and card["licence"] == "CC-BY-4.0" and card["weights_digest"] == digest
    params = MlflowClient(uri).get_run(rec.mlflow_run_id).data.params
    assert params["encoder.aisfx.weights_digest"] == digest
    assert params["encoder.aisfx.licence"] == "CC-BY-4.0" and "aisfx" in params["encoder.aisfx.source"]


def test_hear_preset_licence_and_version_reach_the_probe_cards(synth_fold, tmp_path, monkeypatch):
    """A ``hear`` preset's licence (not "unknown") and the module's version are what a
    probe on it records for its results."""
    train, valid, _ = synth_fold
    (tmp_path / "encoders").mkdir()
    (tmp_path / "encoders" / "toy-apache.toml").write_text(
        'description = "toy"\nfamily = "hear"\nlicence = "Apache-2.0"\n[params]\nmodule = "hear_toy"\n')
    monkeypatch.setenv("MUSICBENCH_WORKSPACE", str(tmp_path))
    probe = build_system("aisfx-probe", encoders=["toy-apache"], C=1.0).fit(train, valid)
    card = probe.training_report()["encoders"][0]
    assert (card["name"], card["licence"]) == ("toy-apache", "Apache-2.0")
    assert card["source"] == "HEAR module hear_toy, hear_toy 0.0.1"
