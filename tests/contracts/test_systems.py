"""Contract: every registered system preset builds, fits, scores and is deterministic, and
every registered family follows scikit-learn's estimator rules.

Adding a preset to ``systems/`` or a family to ``FAMILIES`` is enough to be covered here.
The contract fold and the quick builds are shared with ``test_system_kinds.py``.
Neural presets are shortened (``max_epochs``) so the suite stays fast; learning quality
is tested per family.
"""

from __future__ import annotations

import inspect
import json

import numpy as np
import pytest
from sklearn.base import clone

from musicbench.errors import ConfigError, UnknownNameError
from musicbench.systems import (
    FAMILIES,
    build_system,
    family_class,
    get_preset,
    system_names,
    valid_params,
)
from musicbench.systems.params import Rule

from helpers import build, parts_for, quick


@pytest.fixture(scope="module", params=system_names())
def fitted(request, contract_fold):
    train, valid, test = parts_for(request.param, contract_fold)
    system = build(request.param).fit(train, valid)
    return request.param, system, system.predict_scores(test.without_labels())


def test_refit_reads_only_declared_frames_and_gives_the_same_scores(fitted, contract_fold, tmp_path,
                                                                   monkeypatch):
    """A run extracts what ``extractors()`` declares before its cells start; fitting and
    scoring must then find every frame they read in the cache. The same seed gives the
    same scores."""
    from musicbench.features import Extractor, FeatureCache, extract_frames

    name, system, _ = fitted
    monkeypatch.setenv("MUSICBENCH_CACHE", str(tmp_path))
    train, valid, test = parts_for(name, contract_fold)
    declared = system.extractors(train.sample_rate)
    assert all(isinstance(e, Extractor) for e in declared)
    if declared:
        for part in (train, valid, test):
            extract_frames(part, declared, FeatureCache(), n_jobs=1, keep=False)
    before = set(tmp_path.rglob("*.npy"))
    again = build(name).fit(train, valid).predict_scores(test.without_labels())
    assert set(tmp_path.rglob("*.npy")) == before
    np.testing.assert_allclose(again, fitted[2], rtol=1e-6, atol=1e-7)


def test_preset_declares_family_and_valid_search_space(fitted):
    name = fitted[0]
    preset = get_preset(name)
    valid = valid_params(family_class(preset["family"]))
    assert preset.get("description")
    assert set(preset["params"]) <= set(valid)
    assert preset["search_space"], f"{name} declares no Optuna search space"
    assert set(preset["search_space"]) <= set(valid)


def test_parameters_are_plain_attributes(fitted):
    name, system, _ = fitted
    params = system.get_params()
    expected_params = {**get_preset(name)["params"], **quick(name)}
    for key, value in expected_params.items():
        expected = tuple(value) if isinstance(value, list) else value
        got = tuple(params[key]) if isinstance(params[key], list) else params[key]
        assert got == expected
    fresh = clone(system)
    assert fresh.get_params() == params and not hasattr(fresh, "n_classes_")


def test_scores_have_one_column_per_class(fitted, contract_fold):
    name, _, scores = fitted
    test = parts_for(name, contract_fold)[2]
    assert scores.shape == (len(test), len(test.classes))
    assert np.isfinite(scores).all()


def test_training_report_is_json(fitted):
    name, system, _ = fitted
    report = system.training_report()
    assert isinstance(report, dict) and json.loads(json.dumps(report)) == report
    assert clone(system).training_report() == {}


def test_search_space_bounds_are_valid_parameters(fitted):
    """Whatever a tuner samples from the declared space is a value the family accepts."""
    name = fitted[0]
    for param, spec in get_preset(name)["search_space"].items():
        values = spec["choices"] if spec["type"] == "categorical" else [spec["low"], spec["high"]]
        for value in values:
            build_system(name, **{param: value}).validate_params()


def test_unknown_parameter_lists_valid_ones(fitted):
    with pytest.raises(UnknownNameError, match=r"valid parameters of .*: .*seed"):
        build_system(fitted[0], no_such_param=1)


def test_unknown_system_lists_valid_ones():
    with pytest.raises(UnknownNameError, match="mfcc-stats-svm"):
        build_system("no-such-system")


@pytest.mark.parametrize("name", ["mfcc-stats-svm", "mfcc-vq-svm", "gmm", "features-stats-svm"])
def test_classical_systems_learn_the_synthetic_task(name, synth_fold):
    train, valid, test = synth_fold
    scores = build(name).fit(train, valid).predict_scores(test.without_labels())
    accuracy = float(np.mean(scores.argmax(axis=1) == test.y))
    assert accuracy >= 0.4, f"{name}: {accuracy:.2f} on 6 classes (chance 0.17)"


BAD = "no-such-value"  # a string no parameter of any family accepts


@pytest.fixture(params=sorted(FAMILIES))
def family(request):
    return family_class(request.param)


def test_family_takes_seed_and_device(family):
    params = inspect.signature(family.__init__).parameters
    assert "seed" in params and "device" in params


def test_constructor_is_made_from_the_declared_parameters(family):
    """Every parameter is declared once with its default and rule; the constructor takes
    exactly those, stores them untouched, and scikit-learn's ``clone`` round-trips them."""
    assert valid_params(family) == list(family.params)
    assert all(isinstance(p.rule, Rule) for p in family.params.values())
    system = family(seed=7)
    assert system.get_params(deep=False) == {k: p.default for k, p in family.params.items()} | {"seed": 7}
    assert clone(system).get_params(deep=False) == system.get_params(deep=False)
    with pytest.raises(TypeError, match=f"{family.__name__}: unexpected parameter.s. nonsense; valid: "):
        family(nonsense=1)


def test_defaults_are_valid_and_match_presets(family):
    """A parameter every preset of the family sets to one value has it as its default."""
    family().validate_params()
    defaults = {k: p.default for k, p in inspect.signature(family.__init__).parameters.items()
                if k != "self"}
    presets = [get_preset(n) for n in system_names()]
    presets = [p["params"] for p in presets if family_class(p["family"]) is family]

    def norm(value):
        return tuple(value) if isinstance(value, list) else value

    for key, default in defaults.items():
        values = [norm(p[key]) for p in presets if key in p]
        if len(values) == len(presets) > 0 and all(v == values[0] for v in values):
            assert norm(default) == values[0], f"{family.__name__}.{key}: default {default!r}"


def test_invalid_values_are_refused_by_validate_params_not_init(family, synth_fold):
    train, valid, _ = synth_fold
    for key in valid_params(family):
        system = family(**{key: BAD})  # scikit-learn: __init__ stores, never validates
        assert system.get_params()[key] == BAD
        assert clone(system).get_params()[key] == BAD
        message = rf"{key}='{BAD}' must be .+"
        with pytest.raises(ConfigError, match=message):
            system.validate_params()
        with pytest.raises(ConfigError, match=message):
            system.fit(train, valid)
        assert not [k for k in vars(system) if k.endswith("_")], "fitted state before validation"


def test_bad_preset_is_refused_when_built_naming_file_parameter_and_range(tmp_path, monkeypatch):
    (tmp_path / "systems").mkdir()
    path = tmp_path / "systems" / "bad-svm.toml"
    path.write_text('family = "classical"\n[params]\nC = "abc"\nn_mfcc = -5\n')
    monkeypatch.setenv("MUSICBENCH_WORKSPACE", str(tmp_path))
    with pytest.raises(ConfigError) as err:
        build_system("bad-svm")
    message = str(err.value)
    assert str(path) in message
    assert "C='abc' must be a number > 0" in message
    assert "n_mfcc=-5 must be an integer >= 1" in message
    with pytest.raises(ConfigError, match=r"n_mfcc=30 must be <= n_mels=20"):
        build_system("mfcc-stats-svm", n_mfcc=30, n_mels=20)
    (tmp_path / "systems" / "seeded.toml").write_text('family = "gmm"\n[params]\nseed = 3\n')
    with pytest.raises(ConfigError, match=r"seeded.toml: seed and device come from the run"):
        build_system("seeded")
