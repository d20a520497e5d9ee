"""The run behind ``musicbench pretrain``: contrastive pretraining of a backbone on unlabelled audio.

The audio is a task's training part (one fold's train and valid clips; the test part is
never opened) or a folder of audio files. The run logs to MLflow, saves a resume state
after every epoch (a killed run, restarted with the same command, continues from the last
finished epoch and ends with the same weights) and writes the backbone checkpoint
(``torch.load(weights_only=True)``) with a JSON card beside it.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from musicbench.audio import ClipPolicy, load_audio
from musicbench.errors import ConfigError
from musicbench.protocol.experiment import TaskSource, open_clips, resolve_split
from musicbench.runtime import atomic_write, code_version
from musicbench.systems import build_system, get_preset
from musicbench.systems.deep.contrastive import bank_digest, check_views, pretrain_backbone
from musicbench.systems.deep.inputs import DeepInput, FeatureBank
from musicbench.systems.deep.system import DeepSystem
from musicbench.systems.deep.trainer import resolve_device
from musicbench.tasks.sources import AUDIO_SUFFIXES

PARTS = ("train", "valid")  # what a fold lends to pretraining; never its test part
EXPERIMENT = "pretrain"


@dataclass
class PretrainRun:
    """One pretraining run, as the command line states it."""

    backbone: str
    out: Path
    task: str | None = None
    protocol: str | None = None
    fold: int = 0
    parts: tuple[str, ...] = PARTS
    folder: Path | None = None
    epochs: int = 20
    batch_size: int = 32
    temperature: float = 0.1
    views: tuple[str, ...] | None = None  # None: the backbone preset's
    lr: float | None = None
    seed: int = 0
    device: str = "cpu"
    overrides: dict[str, Any] = field(default_factory=dict)
    data_home: str | None = None
    index_dir: str | None = None
    allow_partial: bool = False
    tracking_uri: str | None = None
    track: bool = True


@dataclass
class Clips:
    """Unlabelled clips for pretraining: ids, where they came from, and how to read them."""

    ids: list[str]
    data: dict[str, Any]  # the card's description of the data
    source_rate: int
    waves: list[np.ndarray] | None = None  # folder clips (a task's come through the feature cache)
    part: Any = None  # a task's ClipData


def backbone_system(run: PretrainRun) -> DeepSystem:
    """The backbone as a deep system carrying the pretraining settings, validated."""
    preset = get_preset(run.backbone)
    if preset["family"] != "deep":
        raise ConfigError(f"--backbone {run.backbone}: a {preset['family']} system has no backbone to "
                          "pretrain; use a preset of the deep family (e.g. cnn1d-small, samplecnn-small, "
                          "shortchunk-cnn-ref)")
    settings = {"pretrain_epochs": run.epochs, "pretrain_batch_size": run.batch_size,
                "temperature": run.temperature, **({"views": list(run.views)} if run.views else {}),
                **({"pretrain_lr": run.lr} if run.lr else {})}
    system = build_system(run.backbone, seed=run.seed, device=run.device, **{**run.overrides, **settings})
    check_views(system.views)
    return system


def task_clips(run: PretrainRun) -> Clips:
    """A fold's ``parts`` of the task: resolved from the clip list only; no test audio is read."""
    bad = [p for p in run.parts if p not in PARTS]
    if bad or not run.parts:
        raise ConfigError(f"--parts {','.join(run.parts)}: pretraining reads a fold's "
                          f"{' and '.join(PARTS)} parts only, never its test part")
    clipset = open_clips(TaskSource(run.task, run.data_home, run.index_dir, run.allow_partial))
    protocol = run.protocol or clipset.task.spec.default_protocol
    split = resolve_split(protocol, clipset)
    if not 0 <= run.fold < len(split.folds):
        raise ConfigError(f"--fold {run.fold}: {protocol} on {run.task} has folds 0..{len(split.folds) - 1}")
    fold = split.folds[run.fold]
    ids = [t for part in run.parts for t in getattr(fold, part)]
    data = {"task": run.task, "protocol": protocol, "fold": run.fold, "parts": list(run.parts),
            "split_hash": split.hash}
    return Clips(ids, data, clipset.task.spec.clip.sample_rate, part=clipset.part(ids))


def folder_clips(folder: Path, sample_rate: int) -> Clips:
    """Every audio file under ``folder`` (recursively), mono at ``sample_rate``."""
    if not folder.is_dir():
        raise ConfigError(f"--folder {folder}: not a folder")
    files = sorted(f for f in folder.rglob("*") if f.suffix.lower() in AUDIO_SUFFIXES and f.is_file())
    if len(files) < 2:
        raise ConfigError(f"--folder {folder}: {len(files)} audio file(s) found "
                          f"({', '.join(AUDIO_SUFFIXES)}); contrastive pretraining needs at least 2")
    ids = [str(f.relative_to(folder)) for f in files]
    policy = ClipPolicy(sample_rate=sample_rate)
    waves = [load_audio(str(f), i, policy) for f, i in zip(files, ids, strict=True)]
    return Clips(ids, {"folder": str(folder)}, sample_rate, waves=waves)


def banks(system: DeepSystem, clips: Clips,
          device: torch.device) -> tuple[DeepInput, FeatureBank, FeatureBank]:
    """(the network's input, the clips' waveforms at its rate, the clips' inputs)."""
    spec = system.input_spec(clips.source_rate)
    wave = system.wave_spec(spec)
    if clips.part is not None:
        audio = system.bank(clips.part, wave, device)
        return spec, audio, audio if spec == wave else system.bank(clips.part, spec, device)
    waves = [wave(w) for w in clips.waves]
    audio = FeatureBank(waves, device, wave.pad_value)
    return spec, audio, audio if spec == wave else FeatureBank([spec(w) for w in clips.waves], device,
                                                              spec.pad_value)


def card(run: PretrainRun, system: DeepSystem, clips: Clips, digest: str, history: list[dict[str, Any]],
         checkpoint: Path) -> dict[str, Any]:
    """The JSON card written beside the checkpoint."""
    return {
        "backbone": run.backbone, "params": {k: v for k, v in system.get_params().items() if k != "device"},
        "data": {**clips.data, "clips": len(clips.ids),
                 "ids_digest": hashlib.sha1("\n".join(clips.ids).encode()).hexdigest()[:16],
                 "content_digest": digest},
        "views": list(system.views), "temperature": run.temperature, "epochs": run.epochs,
        "batch_size": run.batch_size, "seed": run.seed,
        "loss": [row["loss"] for row in history], "history": history,
        "code_version": code_version(), "checkpoint": checkpoint.name,
        "weights_digest": hashlib.sha256(checkpoint.read_bytes()).hexdigest()[:16],
    }


def state_path(out: Path) -> Path:
    return out.with_name(out.name + ".resume")


def pretrain(run: PretrainRun, log=print) -> dict[str, Any]:
    """Check every input, then pretrain (resuming where a killed run stopped); returns the card."""
    if (run.task is None) == (run.folder is None):
        raise ConfigError("give the unlabelled audio as exactly one of --task or --folder")
    if run.out.suffix != ".pt":
        raise ConfigError(f"--out {run.out}: expected a .pt checkpoint path (the card goes beside it "
                          "as .json)")
    system = backbone_system(run)
    device = resolve_device(run.device)
    clips = (task_clips(run) if run.task is not None
             else folder_clips(run.folder, system.sample_rate or ClipPolicy().sample_rate))
    if len(clips.ids) < 2:
        raise ConfigError(f"{clips.data}: {len(clips.ids)} clip(s); contrastive pretraining needs at least 2")
    spec, audio, inputs = banks(system, clips, device)
    digest = bank_digest(audio, clips.ids)
    config = system.pretrain_config(spec)
    config.extra["data"] = digest
    log(f"pretraining {run.backbone} on {len(clips.ids)} clips ({clips.data}), {run.epochs} epochs, "
        f"views {'+'.join(system.views)}, temperature {run.temperature}, {device}")
    tracker = _Tracking(run, config.key(), system, clips, log) if run.track else None
    done = []

    def on_epoch(row: dict[str, Any]) -> None:
        done.append(row)
        log(f"epoch {row['epoch']}/{run.epochs}  loss {row['loss']:.4f}  {row['clips_per_s']:.1f} clips/s  "
            f"{row['x_realtime']:.1f}x real time")
        if tracker:
            tracker.epoch(row)

    t0 = time.perf_counter()
    _, history = pretrain_backbone(system.net_spec(1, spec), system.get_params(), config, audio, inputs,
                                   clips.ids, run.out, _data_line(clips.data), state_path(run.out), on_epoch)
    if len(done) < len(history):
        log(f"resumed after epoch {len(history) - len(done)} of {run.epochs}")
    result = card(run, system, clips, digest, history, run.out)
    result["seconds"] = round(time.perf_counter() - t0, 3)
    card_path = run.out.with_suffix(".json")
    atomic_write(card_path, json.dumps(result, indent=1, default=float))
    if tracker:
        tracker.finish(result, [run.out, card_path])
    log(f"backbone {run.out} (weights {result['weights_digest']}), card {card_path}")
    return result


def _data_line(data: dict[str, Any]) -> str:
    if "folder" in data:
        return f"folder {data['folder']}"
    return f"{data['task']} {data['protocol']} fold {data['fold']} ({'+'.join(data['parts'])})"


class _Tracking:
    """One MLflow run per pretraining run (found again by its key when a killed run resumes)."""

    def __init__(self, run: PretrainRun, key: str, system: DeepSystem, clips: Clips, log):
        from musicbench.results.tracking import Tracker

        self.tracker = Tracker(EXPERIMENT, run.tracking_uri)
        client = self.tracker.client
        found = client.search_runs([self.tracker.experiment_id], f"tags.pretrain_key = '{key}'",
                                   max_results=1)
        if found:
            self.run_id = found[0].info.run_id
            client.update_run(self.run_id, "RUNNING")
        else:
            tags = {"pretrain_key": key, "backbone": run.backbone, "code_version": code_version(),
                    "data": _data_line(clips.data)}
            self.run_id = client.create_run(self.tracker.experiment_id, tags=tags).info.run_id
            params = {**{k: v for k, v in system.get_params().items() if k != "device"},
                      "backbone": run.backbone, "clips": len(clips.ids), "device": run.device}
            for k, v in params.items():
                client.log_param(self.run_id, k, str(v)[:500])
        self.log = log

    def epoch(self, row: dict[str, Any]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        keys = ("loss", "clips_per_s", "x_realtime", "seconds")
        self.tracker.client.log_batch(self.run_id, metrics=[Metric(k, float(row[k]), now, row["epoch"])
                                                            for k in keys])

    def finish(self, result: dict[str, Any], artifacts: list[Path]) -> None:
        client = self.tracker.client
        client.set_tag(self.run_id, "weights_digest", result["weights_digest"])
        for path in artifacts:
            client.log_artifact(self.run_id, str(path))
        client.set_terminated(self.run_id, "FINISHED")


__all__ = ["PretrainRun", "pretrain"]
