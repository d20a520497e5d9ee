"""The literature's benchmarks: shipped split lists as named protocols, known faults of a
protocol, the 24-key tasks and the MIREX weighted score."""

from __future__ import annotations

import hashlib
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from musicbench.errors import ConfigError, DataError, UnknownNameError
from musicbench.protocol.metrics import evaluate, get_metric
from musicbench.protocol.splits import ProtocolWarning, parse_protocol, resolve
from musicbench.tasks import ClipSet, get_task
from musicbench.tasks.keys import KEYS, key_name, key_relation_score, parse_key
from musicbench.tasks.literature import read_list
from musicbench.tasks.loader import Clip

from helpers import REPO, SHARED, needs_shared

GENRES = ["blues", "classical", "country", "disco", "hip-hop", "jazz", "metal", "pop", "reggae", "rock"]
SPLITS = REPO / "datasets" / "splits"
GTZAN_LISTS = SPLITS / "gtzan_genre" / "fault-filtered"


def _index_only(ref: str, index_dir: Path) -> ClipSet:
    """Every track of a GTZAN index as a clip, without audio: enough to resolve protocols."""
    task = get_task(ref, index_dir=str(index_dir))
    clips = [Clip(t, "", t.split(".")[0].replace("hiphop", "hip-hop")) for t in task.track_ids()]
    return ClipSet(task, clips, list(task.spec.classes), len(clips), [])


def _quiet(protocol, clipset):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return resolve(protocol, clipset)


def test_shipped_fault_filtered_lists_have_the_published_sizes():
    sizes = {part: len(read_list(GTZAN_LISTS / f"{part}.txt")) for part in ("train", "valid", "test")}
    assert sizes == {"train": 443, "valid": 197, "test": 290}
    entries = [e for part in sizes for e in read_list(GTZAN_LISTS / f"{part}.txt")]
    assert len(set(entries)) == 930  # no track in two parts
    header = (GTZAN_LISTS / "train.txt").read_text().splitlines()[:6]
    assert any("github.com/coreyker/dnn-mgr" in line for line in header)  # the source is cited


@needs_shared
def test_shipped_lists_equal_the_reference_copy():
    for part in ("train", "valid", "test"):
        ours = sorted(read_list(GTZAN_LISTS / f"{part}.txt"))
        theirs = sorted(read_list(SHARED / "splits" / "gtzan_genre" / f"fault_filtered_{part}.txt"))
        assert hashlib.sha256("\n".join(ours).encode()).hexdigest() == \
            hashlib.sha256("\n".join(theirs).encode()).hexdigest()


@needs_shared
def test_fault_filtered_is_gtzans_default_and_cuts_the_index():
    clipset = _index_only("gtzan_genre", SHARED / "indexes")
    assert clipset.task.spec.default_protocol == "fault-filtered"
    split = resolve("fault-filtered", clipset)
    (fold,) = split.folds
    assert (len(fold.train), len(fold.valid), len(fold.test)) == (443, 197, 290)
    assert split.protocol == "fault-filtered"
    # on mini, a subset of the index, the lists are cut to its tracks; the rest of it is left out
    mini = _index_only("gtzan_genre:mini", SHARED / "indexes")
    (cut,) = resolve("fault-filtered", mini).folds
    listed = {Path(e).stem for p in ("train", "valid", "test") for e in read_list(GTZAN_LISTS / f"{p}.txt")}
    in_mini = {c.track_id for c in mini.clips} & listed
    assert sorted(cut.train + cut.valid + cut.test) == sorted(in_mini) and 0 < len(in_mini) < 100


@needs_shared
def test_random_folds_on_gtzan_carry_the_known_fault():
    clipset = _index_only("gtzan_genre", SHARED / "indexes")
    with pytest.warns(ProtocolWarning, match="Sturm 2013"):
        resolve("kfold:10", clipset)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ProtocolWarning)
        resolve("fault-filtered", clipset)  # the literature's split: no warning


def _workspace_spec(tmp_path: Path, lists: Path) -> None:
    (tmp_path / "datasets").mkdir()
    (tmp_path / "datasets" / "gtzan_genre.toml").write_text(
        'dataset = "gtzan_genre"\nversion = "1.0"\nkind = "multiclass"\nlabel = "genre"\n'
        f'classes = {GENRES}\n'
        f'[protocols.mine]\nlists = "{lists}"\nversion = "1.0"\n')


@needs_shared
def test_bad_split_lists_are_refused_naming_the_file(tmp_path, monkeypatch):
    lists = tmp_path / "lists"
    shutil.copytree(GTZAN_LISTS, lists)
    monkeypatch.setenv("MUSICBENCH_WORKSPACE", str(tmp_path))
    _workspace_spec(tmp_path, lists)
    clipset = _index_only("gtzan_genre", SHARED / "indexes")
    with (lists / "test.txt").open("a") as f:
        f.write("blues/blues.00999.wav\n")
    with pytest.raises(DataError, match=r"test\.txt: blues/blues\.00999\.wav"):
        resolve("mine", clipset)
    (lists / "valid.txt").unlink()
    with pytest.raises(ConfigError, match=r"valid list .*valid\.txt is missing"):
        resolve("mine", clipset)
    with pytest.raises(UnknownNameError, match="valid protocols of gtzan_genre: .*mine"):
        resolve("fault-filtred", clipset)


def test_named_protocols_parse_as_names_and_reserved_words_do_not():
    assert str(parse_protocol("fault-filtered")) == "fault-filtered"
    for bad in ("kfold", "manifest", "Fault Filtered"):
        with pytest.raises(ConfigError):
            parse_protocol(bad)


@pytest.mark.parametrize("text, key", [("Eb minor", "Eb minor"), ("D# min", "Eb minor"),
                                       ("a:minor", "A minor"), ("Bbm", "Bb minor"), ("F#", "F# major"),
                                       ("c major", "C major"),
                                       ("Cb major", "B major"), ("x", None), ("C dorian", None), ("", None)])
def test_key_spellings_read_into_the_24_keys(text, key):
    assert key_name(text) == key


def test_mirex_weights_on_hand_worked_pairs():
    pairs = {("C major", "C major"): 1.0, ("C major", "G major"): 0.5, ("A minor", "E minor"): 0.5,
             ("C major", "F major"): 0.0,  # a fifth below is not credited (MIREX, mir_eval's default)
             ("C major", "A minor"): 0.3, ("A minor", "C major"): 0.3, ("C major", "C minor"): 0.2,
             ("C minor", "C major"): 0.2, ("C major", "E minor"): 0.0, ("C major", "Db major"): 0.0}
    for (ref, est), score in pairs.items():
        assert key_relation_score(ref, est) == score, (ref, est)
    assert parse_key("G major") == (7, "major")


def test_mirex_key_score_is_a_registered_metric_of_key_tasks_only():
    m = get_metric("mirex_key_score")
    assert m.higher_is_better and m.aggregation == "mean" and m.kinds == ("multiclass",)
    keys = list(KEYS)
    y = np.array([keys.index(k) for k in ("C major", "C major", "A minor", "D major")])
    est = [keys.index(k) for k in ("C major", "G major", "C major", "Bb major")]
    out = evaluate("multiclass", y, np.eye(24)[est], keys)
    assert out["mirex_key_score"] == pytest.approx((1 + 0.5 + 0.3 + 0) / 4)
    assert out["accuracy"] == 0.25
    assert "mirex_key_score" not in evaluate("multiclass", np.array([0, 1]), np.eye(2), ["a", "b"])
    rng = np.random.default_rng(0)  # random guessing scores the declared chance level
    y = rng.integers(0, 24, 24_000)
    guess = evaluate("multiclass", y, rng.random((24_000, 24)), keys)["mirex_key_score"]
    assert guess == pytest.approx(m.chance(24), abs=0.005)


@needs_shared
def test_key_tasks_read_mirdatas_sample(tmp_path):
    home = tmp_path / "beatport_key"
    shutil.copytree(SHARED / "mirdata_sample" / "resources" / "beatport_key", home)
    task = get_task("beatport_key:sample", str(home), str(SHARED / "mirdata_sample" / "indexes"))
    (clip,) = task.clips().clips
    assert clip.label == "D minor" and task.clips().classes == list(KEYS)
    (key_file,) = (home / "keys").iterdir()
    key_file.write_text("D minor | A minor")  # a modulation: no single key
    task = get_task("beatport_key:sample", str(home), str(SHARED / "mirdata_sample" / "indexes"))
    with pytest.raises(DataError, match="names more than one single major or minor key"):
        task.clips(on_bad_track="error")
    gs = get_task("giantsteps_key:sample", str(SHARED / "mirdata_sample" / "resources" / "giantsteps_key"),
                  str(SHARED / "mirdata_sample" / "indexes"))
    assert [c.label for c in gs.clips().clips] == ["D major"]


@needs_shared
def test_giantsteps_protocol_trains_on_one_dataset_and_tests_on_the_other():
    samples = SHARED / "mirdata_sample"
    task = get_task("giantsteps_key_mtg:sample", str(samples / "resources"), str(samples / "indexes"))
    clipset = task.clips()
    (fold,) = resolve("official", clipset).folds
    assert fold.train == ("beatport_key/1",) and fold.test == ("giantsteps_key/3",)
    assert {c.track_id: c.label for c in clipset.clips} == {"beatport_key/1": "D minor",
                                                            "giantsteps_key/3": "D major"}
    assert task.status(checksums=False)["on_disk"] == 2
    with pytest.raises(UnknownNameError, match="version of beatport_key"):
        get_task('giantsteps_key_mtg+join={beatport_key="2.0"}', str(samples / "resources"),
                 str(SHARED / "indexes")).clips()


def test_official_n_runs_one_of_the_datasets_splits_and_refuses_others():
    samples = SHARED / "mirdata_sample"
    task = get_task("giantsteps_key_mtg:sample", str(samples / "resources"), str(samples / "indexes"))
    clipset = task.clips()
    every, first = resolve("official", clipset), resolve("official:0", clipset)
    assert str(parse_protocol("official:0")) == "official:0" and first.protocol == "official:0"
    assert first.folds == every.folds  # one official split: split 0 is all of it
    with pytest.raises(ConfigError, match=r"defines 1 official split\(s\); valid: official, official:0"):
        resolve("official:1", clipset)
    with pytest.raises(ConfigError, match="not an integer"):
        parse_protocol("official:x")
    assert get_task("mtg_jamendo_autotagging_moodtheme").spec.default_protocol == "official:0"
