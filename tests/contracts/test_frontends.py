"""The contract every registered front end passes: a new entry of ``FRONTENDS`` is tested
here with no new test code.

A front end maps audio to finite float32 ``[frames, dims]`` with one frame per hop (centred
frames), its width not depending on the clip's length; and its cache key is honest: every
parameter it declares changes its output, and no other parameter does (else two
configurations would share cached frames, or one would be computed twice).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from musicbench.errors import ConfigError, UnknownNameError
from musicbench.features import FRONTENDS, FrontEnd

SR = 22050
OTHER = {"n_fft": 1024, "hop_length": 256, "n_mels": 64, "n_mfcc": 13, "n_bins": 72, "fmin": 65.41}


def chirp(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (0.5 * np.sin(2 * np.pi * (220 + 880 * t) * t)).astype(np.float32)


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    return chirp(1.0)


@pytest.fixture(params=FRONTENDS.names(), scope="module")
def name(request) -> str:
    return request.param


def test_one_finite_float32_frame_per_hop_of_a_fixed_width(name, clip):
    fe = FrontEnd(name, SR)
    frames, longer = fe(clip), fe(chirp(1.5))
    assert frames.dtype == np.float32 and frames.ndim == 2 and np.isfinite(frames).all()
    assert frames.shape[0] == 1 + len(clip) // fe.hop_length
    assert longer.shape == (1 + int(1.5 * SR) // fe.hop_length, frames.shape[1])
    np.testing.assert_array_equal(fe(clip), frames)


@pytest.mark.parametrize("param", sorted(OTHER))
def test_exactly_the_declared_parameters_change_the_output(name, param, clip):
    base = FrontEnd(name, SR)
    other = replace(base, **{param: OTHER[param]})
    a, b = base(clip), other(clip)
    if param in FRONTENDS[name].params:
        assert base.config() != other.config()
        assert a.shape != b.shape or not np.allclose(a, b), f"{name} ignores its parameter {param}"
    else:
        assert base.config() == other.config()
        np.testing.assert_array_equal(a, b, err_msg=f"{name} reads {param}, absent from its cache key")


def test_has_a_description(name):
    assert FRONTENDS[name].doc


def test_parameters_are_validated_naming_the_rule():
    with pytest.raises(ConfigError, match="power of 2"):
        FrontEnd("mfcc", SR, n_fft=1000)
    with pytest.raises(ConfigError, match="n_mfcc"):
        FrontEnd("mfcc", SR, n_mfcc=200, n_mels=40)
    with pytest.raises(ConfigError, match="Nyquist"):
        FrontEnd("cqt", 8000, n_bins=96)
    with pytest.raises(UnknownNameError, match="mfcc"):
        FrontEnd("mfcc2", SR)
