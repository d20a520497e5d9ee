"""Pruning a real neural system: the deep family's trainer reports each epoch's validation
score through the ``epoch_callback`` given to ``fit``, and the median pruner stops poor trials early."""

from __future__ import annotations

import optuna
import pytest

from musicbench.tuning.tune import TuneConfig, tune

EPOCHS = 4
# a tiny 1-D CNN; the learning rate spans useless (1e-6) to good, so some trials lag
TINY_CNN = f"""
family = "deep"

[params]
model = "cnn1d"
width = 8
n_blocks = 2
chunk_seconds = 1.0
batch_size = 8
max_epochs = {EPOCHS}
patience = {EPOCHS}

[search_space]
lr = {{ type = "float", low = 1e-6, high = 3e-2, log = true }}
"""


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    (tmp_path / "systems").mkdir()
    (tmp_path / "systems" / "tune-cnn.toml").write_text(TINY_CNN)
    monkeypatch.setenv("MUSICBENCH_WORKSPACE", str(tmp_path))
    return tmp_path


def test_median_pruner_stops_poor_neural_trials_early(workspace):
    url = f"sqlite:///{workspace / 'optuna.db'}"
    result = tune(TuneConfig(task="synth_genre:mini", system="tune-cnn", protocol="group-kfold:performer:3",
                             trials=6, folds=1, storage=url, study_name="cnn", pruner="median"))
    trials = optuna.load_study(study_name="cnn", storage=url).get_trials()
    states = [t.state for t in trials]
    pruned = [t for t in trials if t.state == optuna.trial.TrialState.PRUNED]
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(trials) == 6 and optuna.trial.TrialState.FAIL not in states
    assert pruned and complete, states
    for t in complete:
        assert sorted(t.intermediate_values) == list(range(1, EPOCHS + 1))
    for t in pruned:  # training stopped: fewer epochs ran than a complete trial's
        assert 1 < len(t.intermediate_values) < EPOCHS
        last = max(t.intermediate_values)
        assert t.intermediate_values[last] <= sorted(c.intermediate_values[last] for c in complete)[-1]
    assert result.n_finished == 6 and result.best_value == max(t.value for t in complete)

    from mlflow import MlflowClient

    from musicbench.tuning.tracking import EXPERIMENT, STUDY_TAG, study_key

    client = MlflowClient()
    exp = client.get_experiment_by_name(EXPERIMENT).experiment_id
    (parent,) = client.search_runs([exp], f"tags.`{STUDY_TAG}` = '{study_key(url, 'cnn')}'")
    runs = client.search_runs([exp], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    status = {int(r.data.tags["musicbench.trial"]): r.info.status for r in runs}
    assert status == {t.number: "KILLED" if t in pruned else "FINISHED" for t in trials}
    history = client.get_metric_history(runs[0].info.run_id, "valid_accuracy_epoch")
    trial = trials[int(runs[0].data.tags["musicbench.trial"])]
    assert {m.step: m.value for m in history} == pytest.approx(trial.intermediate_values)


@pytest.mark.parametrize("max_epochs, warmup", [(4, 2), (30, 7)])
def test_no_trial_is_pruned_before_a_quarter_of_its_epochs(workspace, max_epochs, warmup):
    from musicbench.tuning.tune import prepare

    (workspace / "systems" / "tune-cnn.toml").write_text(
        TINY_CNN.replace(f"max_epochs = {EPOCHS}", f"max_epochs = {max_epochs}"))
    prep = prepare(TuneConfig(task="synth_genre:mini", system="tune-cnn",
                              protocol="group-kfold:performer:3", folds=1))
    assert prep.prune_warmup == warmup
    prep = prepare(TuneConfig(task="synth_genre:mini", system="tune-cnn",
                              protocol="group-kfold:performer:3", folds=1, fixed={"max_epochs": 12}))
    assert prep.prune_warmup == 3
