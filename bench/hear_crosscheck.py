"""HEAR's kit against musicbench on one task: the scene embeddings that
``heareval.embeddings.runner`` writes for ``musicbench.hear`` equal musicbench's own.

Builds a HEAR task folder (trainvaltest, scene, multiclass, 1-s clips padded or trimmed
as hear-preprocess does) from the real mridangam strokes of ``$MUSICBENCH_SHARED``, runs
heareval's embedding runner on it for each encoder, then reads the same folder as a
musicbench task (``source = "hear"``) and embeds its clips with the encoder's own
``scene``. Prints one line per encoder: files compared, largest absolute and relative
difference. Needs heareval and TensorFlow: run it from the venv of
``bench/hear_validator.sh`` (``bench/hear_crosscheck.sh``).

    python bench/hear_crosscheck.py [ENCODER ...] [--per-class N] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

TASK = "mridangam_stroke-hear-full"
DURATION = 1.0  # seconds, the task's sample_duration


def build_task(root: Path, per_class: int, rates: set[int]) -> dict[str, list[str]]:
    """The HEAR task folder of ``per_class`` strokes of each class, split 60/20/20."""
    import librosa

    from musicbench.tasks import get_task

    shared = Path(os.environ["MUSICBENCH_SHARED"])
    clips = get_task("mridangam_stroke", str(shared / "data"), str(shared / "indexes")).clips(
        allow_partial=True).clips
    by_class: dict[str, list] = {}
    for c in clips:
        by_class.setdefault(c.label, []).append(c)
    task = root / TASK
    splits: dict[str, dict[str, list[str]]] = {"train": {}, "valid": {}, "test": {}}
    for label, members in sorted(by_class.items()):
        for i, c in enumerate(members[:per_class]):
            split = "test" if i % 5 == 0 else "valid" if i % 5 == 1 else "train"
            name = f"{Path(c.track_id).name}.wav"
            splits[split][name] = [label]
            audio, sr = sf.read(c.path, dtype="float32", always_2d=True)
            audio = audio.mean(axis=1)
            for rate in rates:
                y = librosa.resample(audio, orig_sr=sr, target_sr=rate) if rate != sr else audio
                n = int(DURATION * rate)
                y = np.pad(y, (0, max(0, n - len(y))))[:n].astype(np.float32)
                (task / str(rate) / split).mkdir(parents=True, exist_ok=True)
                sf.write(task / str(rate) / split / name, y, rate, subtype="FLOAT")
    for split, labels in splits.items():
        (task / f"{split}.json").write_text(json.dumps(labels))
    vocab = sorted(by_class)
    rows = "".join(f"{i},{v}\n" for i, v in enumerate(vocab))
    (task / "labelvocabulary.csv").write_text("idx,label\n" + rows)
    (task / "task_metadata.json").write_text(json.dumps({
        "task_name": "mridangam_stroke", "version": "hear-crosscheck", "embedding_type": "scene",
        "prediction_type": "multiclass", "split_mode": "trainvaltest", "splits": list(splits),
        "sample_duration": DURATION, "evaluation": ["top1_acc"]}))
    return {s: list(v) for s, v in splits.items()}


def ours(root: Path, encoder: str) -> dict[str, np.ndarray]:
    """musicbench's own scene embeddings of the task read as a musicbench task."""
    from musicbench.encoders import build_encoder
    from musicbench.tasks import get_task

    model = build_encoder(encoder)
    workspace = root / f"workspace-{encoder}"
    (workspace / "datasets").mkdir(parents=True, exist_ok=True)
    (workspace / "datasets" / "hear_strokes.toml").write_text(
        f'source = "hear"\nroot = "{root / TASK}"\n[clip]\nsample_rate = {model.sample_rate}\n')
    os.environ["MUSICBENCH_WORKSPACE"] = str(workspace)
    task = get_task("hear_strokes")
    out = {}
    with torch.no_grad():
        for clip in task.clips().clips:
            audio = torch.from_numpy(task.load_audio(clip))[None]
            out[clip.track_id] = model.scene(audio, model.sample_rate)[0].numpy()
    return out


def theirs(root: Path, encoder: str) -> dict[str, np.ndarray]:
    """The embeddings heareval's runner writes for ``musicbench.hear`` with this encoder."""
    subprocess.run([sys.executable, "-m", "heareval.embeddings.runner", "musicbench.hear",
                    "--model-options", json.dumps({"encoder": encoder}), "--tasks-dir", str(root),
                    "--task", TASK, "--embeddings-dir", str(root / "embeddings")], check=True,
                   stdout=subprocess.DEVNULL)
    (done,) = (root / "embeddings").glob(f"musicbench.hear-encoder={encoder}*/{TASK}")
    return {f"{f.parent.name}/{f.name.removesuffix('.wav.embedding.npy')}": np.load(f)
            for f in done.glob("*/*.embedding.npy")}


def main() -> int:
    from musicbench.encoders import build_encoder, encoder_names

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("encoders", nargs="*", help="registered encoders (default: all)")
    p.add_argument("--per-class", type=int, default=10)
    p.add_argument("--out", type=Path, default=Path("runs/hear-crosscheck"))
    args = p.parse_args()
    names = args.encoders or encoder_names()
    args.out.mkdir(parents=True, exist_ok=True)
    build_task(args.out, args.per_class, {build_encoder(n).sample_rate for n in names})
    worst = 0.0
    for name in names:
        a, b = ours(args.out, name), theirs(args.out, name)
        if set(a) != set(b):
            print(f"{name}: FAIL, files differ ({sorted(set(a) ^ set(b))[:3]})")
            return 1
        diff = max(float(np.abs(a[k] - b[k]).max()) for k in a)
        rel = max(float(np.abs(a[k] - b[k]).max() / (np.abs(b[k]).max() + 1e-12)) for k in a)
        worst = max(worst, rel)
        print(f"{name}: {len(a)} files, dim {next(iter(a.values())).shape[0]}, max |diff| {diff:.3g}, "
              f"max relative {rel:.3g}")
    return 0 if worst < 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main())
