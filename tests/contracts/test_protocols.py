"""Every protocol kind of the grammar, alone and as a few-shot draw, on one small task:
parts disjoint within each fold, groups never split where the protocol keeps them apart,
the same folds and hash for the same seed, other folds for another seed where the
protocol is random, and a hash that is the folds' own. A new kind needs one example here;
the suite fails until it has one."""

from __future__ import annotations

import pytest

from musicbench.protocol.experiment import TaskSource, open_clips
from musicbench.protocol.grammar import PROTOCOLS, parse_protocol, split_hash
from musicbench.protocol.splits import resolve

SPEC = """description = "synth_genre:mini with an official split and split lists, for the protocol contract"
source = "synthetic"
dataset = "synth_genre"
version = "mini"
kind = "multiclass"
label = "genre"
group = "performer"
classes = ["ballad", "electro", "jazz", "latin", "reggae", "rock"]
default_protocol = "kfold:3"

[clip]
sample_rate = 22050

[synth]
performers = 4
seed = 0

[synth.versions]
mini = {{ n_per_class = 12, duration = 3.0 }}

[official]
attribute = "performer"
train = ["p0", "p1"]
valid = ["p2"]
test = ["p3"]

[protocols.lists]
lists = "{lists}"
"""
#: kind -> (an example on the task above, whether it takes a seed its folds depend on)
EXAMPLES = {
    "official": ("official", False),
    "kfold": ("kfold:3", True),
    "group-kfold": ("group-kfold:performer:2", True),
    "manifest": ("manifest:{lists}", False),
    "named": ("lists", False),
}


@pytest.fixture(scope="module")
def clipset(tmp_path_factory):
    root = tmp_path_factory.mktemp("workspace")
    mp = pytest.MonkeyPatch()
    mp.setenv("MUSICBENCH_WORKSPACE", str(root))
    lists = root / "lists"
    lists.mkdir()
    ids = sorted(c.track_id for c in open_clips(TaskSource("synth_genre:mini")).clips)
    parts = {"train": ids[0::4] + ids[1::4], "valid": ids[2::4], "test": ids[3::4]}  # every class in each
    for part, chosen in parts.items():
        (lists / f"{part}.txt").write_text("# every clip by its track id\n" + "\n".join(chosen) + "\n")
    (root / "datasets").mkdir()
    (root / "datasets" / "contract_synth.toml").write_text(SPEC.format(lists=lists))
    yield open_clips(TaskSource("contract_synth")), str(lists)
    mp.undo()


def test_every_kind_has_an_example():
    assert set(EXAMPLES) == set(PROTOCOLS), "give each protocol kind an example in EXAMPLES"


def _protocols():
    for kind, (example, random) in EXAMPLES.items():
        yield pytest.param(kind, example, random, id=kind)
        yield pytest.param(kind, example + ":shots=2:draws=2", random, id=f"{kind}-few-shot")


@pytest.mark.parametrize(("kind", "example", "random"), list(_protocols()))
def test_protocol_contract(clipset, kind, example, random):
    clips, lists = clipset
    text = example.format(lists=lists)
    p = parse_protocol(text)
    assert p.kind == kind and str(p) == text  # parsed and printed back the same
    split = resolve(text, clips)
    ids = {c.track_id for c in clips.clips}
    groups = clips.attribute("performer")
    assert split.folds
    for f in split.folds:
        train, valid, test = set(f.train), set(f.valid), set(f.test)
        assert train and test and (train | valid | test) <= ids
        assert not (train & test or train & valid or valid & test), f"fold {f.index} shares clips"
        assert len(train) == len(f.train) and len(test) == len(f.test)  # no clip twice
        if PROTOCOLS[kind].own_groups:
            assert not {groups[t] for t in train} & {groups[t] for t in test}, "a group was split"
    again = resolve(text, clips)
    assert again.folds == split.folds and again.hash == split.hash == split_hash(split.folds)
    if random:
        reseeded = _with_seed(text, 1)
        assert parse_protocol(reseeded).seed == 1
        assert resolve(reseeded, clips).hash != split.hash, f"{reseeded} gives the same folds"


def _with_seed(text: str, seed: int) -> str:
    """A seeded protocol with another seed (before any few-shot suffix)."""
    base, sep, shots = text.partition(":shots=")
    return f"{base}:{seed}{sep}{shots}"
