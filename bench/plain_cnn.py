"""The ``cnn2d`` preset's job written as a plain PyTorch script, the baseline the preset's
accuracy and time are measured against (``test_cnn_vs_plain_script.py``).

A 96-band log-mel computed once per clip with librosa (22,050 Hz, 1,024-point FFT, hop
512), standardised with the training clips' mean and deviation; four blocks of 3x3
convolution, batch norm, ReLU and 2x2 max-pooling (32-64-64-128 channels), global average
pooling, dropout 0.3 and a linear layer; 30 epochs of 4 random 3-s chunks per clip,
batch 32, AdamW (1e-3, weight decay 1e-2); a test clip's class is the mean softmax of its
3-s chunks at 50% overlap. No validation part, no early stopping: every training clip is
used for all 30 epochs.

Usage: ``python plain_cnn.py CLIPS.csv`` (columns path, label, fold: the fold in which
the clip is tested); prints the accuracy of each fold, their mean and the seconds taken.
"""

from __future__ import annotations

import sys
import time

import librosa
import numpy as np
import torch
from torch import nn

SR, N_FFT, HOP, N_MELS = 22050, 1024, 512, 96
CHUNK = int(round(3.0 * SR / HOP)) + 1  # frames in a 3-s chunk
EPOCHS, CHUNKS_PER_CLIP, BATCH = 30, 4, 32


def logmel(path: str) -> np.ndarray:
    """``[N_MELS, frames]`` log-mel of one file, padded to one chunk at least."""
    y, _ = librosa.load(path, sr=SR, mono=True)
    m = librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=SR, n_fft=N_FFT, hop_length=HOP,
                                                           n_mels=N_MELS)).astype(np.float32)
    return np.pad(m, ((0, 0), (0, max(0, CHUNK - m.shape[1]))), mode="edge")


def network(n_classes: int) -> nn.Module:
    layers, c = [], 1
    for w in (32, 64, 64, 128):
        layers += [nn.Conv2d(c, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU(), nn.MaxPool2d(2)]
        c = w
    head = [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.3), nn.Linear(c, n_classes)]
    return nn.Sequential(*layers, *head)


def fit_predict(train: list[np.ndarray], y: np.ndarray, test: list[np.ndarray], n_classes: int,
                seed: int = 0, device: str = "cpu") -> np.ndarray:
    """Train on ``train`` (log-mels) and labels ``y``; class probabilities of each ``test`` clip."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    frames = np.concatenate(train, axis=1)
    mean, std = frames.mean(), frames.std() + 1e-6
    train = [torch.from_numpy((m - mean) / std).to(device) for m in train]
    net = network(n_classes).to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-2)
    targets = torch.from_numpy(y).to(device)
    for _ in range(EPOCHS):
        net.train()
        order = rng.permutation(np.repeat(np.arange(len(train)), CHUNKS_PER_CLIP))
        for b in range(0, len(order), BATCH):
            rows = order[b:b + BATCH]
            x = torch.stack([train[r][:, s:s + CHUNK] for r in rows
                             for s in [rng.integers(0, train[r].shape[1] - CHUNK + 1)]])
            loss = nn.functional.cross_entropy(net(x[:, None]), targets[torch.from_numpy(rows).to(device)])
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    probs = []
    with torch.no_grad():
        for m in test:
            m = torch.from_numpy((m - mean) / std).to(device)
            starts = range(0, m.shape[1] - CHUNK + 1, CHUNK // 2)
            x = torch.stack([m[:, s:s + CHUNK] for s in starts])[:, None]
            probs.append(net(x).softmax(1).mean(0).cpu().numpy())
    return np.stack(probs)


def main(csv: str) -> None:
    import pandas as pd

    t0 = time.perf_counter()
    clips = pd.read_csv(csv)
    missing = {"path", "label", "fold"} - set(clips.columns)
    if missing:
        print(f"{csv}: missing column(s) {sorted(missing)}; needs path, label and fold", file=sys.stderr)
        sys.exit(2)
    mels = [logmel(p) for p in clips.path]
    classes = sorted(clips.label.unique())
    y = clips.label.map(classes.index).to_numpy()
    accuracy = []
    for fold in sorted(clips.fold.unique()):
        test = clips.fold.to_numpy() == fold
        probs = fit_predict([mels[i] for i in np.flatnonzero(~test)], y[~test],
                            [mels[i] for i in np.flatnonzero(test)], len(classes))
        accuracy.append(float((probs.argmax(1) == y[test]).mean()))
        print(f"fold {fold}: accuracy {accuracy[-1]:.4f}")
    print(f"mean accuracy {np.mean(accuracy):.4f} ± {np.std(accuracy, ddof=1):.4f} "
          f"in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main(sys.argv[1])
