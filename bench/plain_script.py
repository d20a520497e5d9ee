"""The job of ``bench/test_runner_speed.py`` written as a plain librosa + scikit-learn
script, the baseline musicbench's runner is measured against: 20 MFCCs + deltas from
every clip (one process), then per stratified fold (5) MFCC statistics + RBF SVM and an
MFCC K-means codebook histogram + RBF SVM. Usage: ``python plain_script.py CLIPS.csv``
(columns path, label); prints the mean accuracy of each system."""

from __future__ import annotations

import sys

import librosa
import numpy as np
import pandas as pd
from sklearn.cluster import MiniBatchKMeans
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC


def mfcc_frames(path: str) -> np.ndarray:
    y, sr = librosa.load(path, sr=22050, mono=True)
    mel = librosa.feature.melspectrogram(y=y, sr=sr, n_fft=2048, hop_length=512, n_mels=128)
    m = librosa.feature.mfcc(S=librosa.power_to_db(mel, ref=1.0, top_db=None), n_mfcc=20).T
    return np.hstack([m, np.gradient(m, axis=0)])


def main(csv: str) -> None:
    clips = pd.read_csv(csv)
    frames = [mfcc_frames(p) for p in clips.path]
    y = clips.label.to_numpy()
    stats = np.vstack([np.concatenate([f.mean(0), f.std(0)]) for f in frames])
    acc = {"stats": [], "vq": []}
    for train, test in StratifiedKFold(5, shuffle=True, random_state=0).split(stats, y):
        svm = make_pipeline(StandardScaler(), SVC(C=10.0, class_weight="balanced"))
        acc["stats"].append(svm.fit(stats[train], y[train]).score(stats[test], y[test]))
        pool = np.vstack([frames[i] for i in train]).astype(np.float32)
        mean, std = pool.mean(0), pool.std(0) + 1e-8
        km = MiniBatchKMeans(64, random_state=0, n_init=3, batch_size=4096).fit((pool - mean) / std)
        hist = np.vstack([np.bincount(km.predict(((f - mean) / std).astype(np.float32)), minlength=64)
                          / len(f) for f in frames])
        svm = make_pipeline(StandardScaler(), SVC(C=10.0, class_weight="balanced"))
        acc["vq"].append(svm.fit(hist[train], y[train]).score(hist[test], y[test]))
    print({k: round(float(np.mean(v)), 4) for k, v in acc.items()})


if __name__ == "__main__":
    main(sys.argv[1])
