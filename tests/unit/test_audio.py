"""Bad audio gets an error naming the track, the file and what to do."""

from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf

from musicbench.audio import ClipPolicy, check_audio, load_audio
from musicbench.errors import AudioError, ConfigError

SR = 22050


def tone(seconds=1.0, sr=SR, channels=1):
    t = np.arange(int(seconds * sr)) / sr
    y = 0.5 * np.sin(2 * np.pi * 440 * t).astype(np.float32)
    return np.stack([y] * channels, axis=1) if channels > 1 else y


def test_reads_mono_at_policy_rate_and_crops(tmp_path):
    path = tmp_path / "a.wav"
    sf.write(path, tone(2.0, sr=44100, channels=2), 44100)
    y = load_audio(str(path), "a", ClipPolicy(sample_rate=SR, max_duration=1.5))
    assert y.dtype == np.float32 and y.ndim == 1
    assert y.shape[0] == int(1.5 * SR)


def test_pads_short_clips(tmp_path):
    path = tmp_path / "a.wav"
    sf.write(path, tone(0.5), SR)
    y = load_audio(str(path), "a", ClipPolicy(sample_rate=SR, min_duration=2.0))
    assert y.shape[0] == 2 * SR and np.all(y[SR:] == 0)


def test_center_crop_takes_the_middle(tmp_path):
    path = tmp_path / "a.wav"
    ramp = np.linspace(-1, 1, 3 * SR, dtype=np.float32)
    sf.write(path, ramp, SR, subtype="FLOAT")
    y = load_audio(str(path), "a", ClipPolicy(sample_rate=SR, max_duration=1.0, crop="center"))
    assert abs(float(y.mean())) < 0.01  # the middle third of a symmetric ramp


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p.write_bytes(b"RIFF\x00\x00garbage" * 10), "cannot be decoded"),
        (lambda p: sf.write(p, np.zeros((0,), np.float32), SR), "empty|no audio frames|cannot be decoded"),
        (lambda p: sf.write(p, np.zeros(SR, np.float32), SR), "silent"),
        (lambda p: None, "missing"),
    ],
    ids=["corrupt", "empty", "silent", "missing"],
)
def test_bad_audio_names_track_and_file(tmp_path, make, message):
    path = tmp_path / "bad.wav"
    make(path)
    with pytest.raises(AudioError, match=message) as exc:
        load_audio(str(path), "track-42", ClipPolicy(sample_rate=SR))
    assert "track-42" in str(exc.value) and str(path) in str(exc.value)


def test_wrong_rate_or_channels_against_declared_source(tmp_path):
    path = tmp_path / "a.wav"
    sf.write(path, tone(1.0, sr=16000, channels=2), 16000)
    with pytest.raises(AudioError, match="16000 Hz, the task expects 44100"):
        load_audio(str(path), "t", ClipPolicy(source_sample_rate=44100))
    with pytest.raises(AudioError, match="2 channel.*expects 1"):
        load_audio(str(path), "t", ClipPolicy(source_channels=1))


def test_silent_allowed_when_policy_says_so(tmp_path):
    path = tmp_path / "a.wav"
    sf.write(path, np.zeros(SR, np.float32), SR)
    assert load_audio(str(path), "t", ClipPolicy(allow_silent=True)).shape[0] == SR


@pytest.mark.parametrize("bad", [{"sample_rate": 10}, {"max_duration": -1}, {"crop": "end"},
                                 {"no_such_option": 1}])
def test_bad_clip_policy_values(bad):
    with pytest.raises(ConfigError):
        ClipPolicy.from_dict(bad)


def test_track_checks_are_remembered_until_the_file_changes(tmp_path, monkeypatch):
    """A usable file is not decoded again while its size and mtime stay; rewritten (here
    silenced in place, same size), it is checked again and refused."""
    monkeypatch.setenv("MUSICBENCH_CACHE", str(tmp_path / "cache"))
    path, policy = tmp_path / "a.wav", ClipPolicy()
    sf.write(path, tone(), SR)
    assert check_audio(str(path), policy) is None
    st = os.stat(path)
    sf.write(path, np.zeros(SR, np.float32), SR)
    assert os.stat(path).st_size == st.st_size
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # same size and mtime: not read again
    assert check_audio(str(path), policy) is None
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000))
    assert "silent" in check_audio(str(path), policy)
    assert "silent" in check_audio(str(path), policy)  # an unusable verdict is never remembered
    assert check_audio(str(path), ClipPolicy(allow_silent=True)) is None
