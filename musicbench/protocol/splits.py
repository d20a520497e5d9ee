"""Protocols: named, deterministic ways to cut a task's clips into (train, valid, test) folds.

Grammar (the ``--protocol`` option):

- ``official[:N]``: the dataset's own split (from the task spec's ``[official]`` table);
  where the dataset defines several (MTG-Jamendo's five), every one as a fold, or split N only;
- ``kfold:K[:SEED]``: stratified K folds, shuffled with SEED (default 0); a regression
  task is stratified on quantile bins of its targets (``target_bins``);
- ``group-kfold:FIELD[:K[:SEED]][:valid=stratified]``: folds disjoint in FIELD; without K,
  leave one group out. The validation part is group-disjoint too (whole FIELD groups of
  the training part, about ``VALID_FRACTION`` of it), so early stopping, checkpoint choice
  and tuning never score on groups they train on; ``valid=stratified`` restores the
  stratified hold-out that shares groups with training (results stored before group-disjoint
  validation existed read back under that name);
- ``manifest:PATH``: a folder with ``*train*``, ``*valid*`` and ``*test*`` lists of track
  ids or file paths (one per line), a user's own split;
- ``NAME``: split lists the task spec declares under ``[protocols.NAME]`` and the package
  ships, e.g. ``fault-filtered`` on GTZAN (``musicbench.tasks.literature``);
- any of these followed by ``:shots=K[:draws=D]``: few-shot folds, K training clips per
  class drawn D times from each fold's training part (``musicbench.protocol.fewshot``).

Where any other protocol gives no valid part, a stratified ``VALID_FRACTION`` of the
training part is held out with the same seed. A multilabel task with ``top_k_tags`` or
``min_tag_count`` gets each fold's tag vocabulary from that fold's training part. Every
resolved split has a content hash over its track ids and vocabularies.
"""

from __future__ import annotations

import os
import warnings
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import numpy as np

from musicbench.errors import ConfigError, DataError, UnknownNameError
from musicbench.protocol.fewshot import few_shot_parts
from musicbench.protocol.grammar import (
    NAMED,
    PROTOCOLS,
    Fold,
    ProtocolSpec,
    Split,
    parse_protocol,
    split_hash,
)
from musicbench.registry import resolve as resolve_reference
from musicbench.tasks.literature import read_list
from musicbench.tasks.loader import ClipSet
from musicbench.tasks.parts import Vocabulary

VALID_FRACTION = 0.1
TARGET_BINS = 5  # regression tasks stratify on quantile bins of their targets


class LeakageWarning(UserWarning):
    """Test tracks share a group (artist, tonic, performer...) with training tracks."""


class ProtocolWarning(UserWarning):
    """The literature has shown this protocol to mislead on this task (the task spec's
    ``protocol_warnings``)."""


def known_fault(spec, protocol: str | ProtocolSpec) -> str | None:
    """What the task spec says is wrong with ``protocol`` on it: by the protocol's exact
    name, else by its kind (``kfold``, ``group-kfold``, ``official``)."""
    p = parse_protocol(protocol) if isinstance(protocol, str) else protocol
    return spec.protocol_warnings.get(str(p)) or spec.protocol_warnings.get(p.kind)


def _strata(clipset: ClipSet, ids: list[str]) -> list[str]:
    kind = clipset.task.spec.kind
    if kind == "multiclass":
        return [clipset.by_id[t].label for t in ids]
    if kind == "regression":
        return target_bins(np.array([clipset.by_id[t].label for t in ids], dtype=float).reshape(len(ids), -1))
    return ["|".join(clipset.by_id[t].label[:1]) for t in ids]  # first tag, coarse


def target_bins(y: np.ndarray) -> list[str]:
    """Strata of regression targets (clips x targets): each target cut at its quantiles
    into ``TARGET_BINS`` bins (fewer per target when there are several, so the joint
    strata stay about as many), the bin numbers joined."""
    per_target = max(2, int(round(TARGET_BINS ** (1 / y.shape[1]))))
    codes = []
    for column in y.T:
        edges = np.quantile(column, np.linspace(0, 1, per_target + 1)[1:-1])
        codes.append(np.searchsorted(edges, column, side="right"))
    return ["-".join(str(int(c)) for c in row) for row in np.array(codes).T]


def holdout(clipset: ClipSet, ids: list[str], fraction: float, seed: int) -> tuple[list, list]:
    """Stratified (keep, held-out) cut of ``ids``; classes with one clip stay in keep."""
    rng = np.random.default_rng(seed)
    by_class: dict[str, list[str]] = defaultdict(list)
    for t, s in zip(ids, _strata(clipset, ids), strict=True):
        by_class[s].append(t)
    held: list[str] = []
    for s in sorted(by_class):
        members = sorted(by_class[s])
        rng.shuffle(members)
        n = min(int(round(fraction * len(members))), len(members) - 1)
        held.extend(members[: max(n, 0)])
    held_set = set(held)
    return [t for t in ids if t not in held_set], held


def group_holdout(ids: list[str], group_of: dict[str, str | None], fraction: float,
                  seed: int) -> tuple[list, list]:
    """(keep, held-out) cut of ``ids`` along whole groups: groups in a seeded order are held
    out until they hold at least ``fraction`` of the clips, one group at least, and one
    group always stays in keep."""
    groups = sorted({group_of[t] for t in ids})
    if len(groups) < 2:
        raise DataError(f"a group-disjoint validation part needs 2 or more groups in the training part, "
                        f"found {groups}")
    np.random.default_rng(seed).shuffle(groups)
    size = defaultdict(int)
    for t in ids:
        size[group_of[t]] += 1
    held_groups: set = set()
    for g in groups[:-1]:
        held_groups.add(g)
        if sum(size[h] for h in held_groups) >= fraction * len(ids):
            break
    return [t for t in ids if group_of[t] not in held_groups], [t for t in ids if group_of[t] in held_groups]


def _folds_from_test_sets(clipset: ClipSet, ids: list[str], tests: list[list[str]], seed: int,
                          group_of: dict[str, str | None] | None = None,
                          valid_by_group: bool = False) -> list[Fold]:
    folds = []
    for i, test in enumerate(tests):
        test_set = set(test)
        rest = [t for t in ids if t not in test_set]
        if valid_by_group:
            train, valid = group_holdout(rest, group_of, VALID_FRACTION, seed + i)
        else:
            train, valid = holdout(clipset, rest, VALID_FRACTION, seed + i)
        folds.append(_fold(i, train, valid, test, group_of))
    return folds


def _fold(i: int, train, valid, test, group_of) -> Fold:
    leakage = 0.0
    if group_of is not None and test:
        train_groups = {group_of[t] for t in train} - {None}
        leakage = sum(group_of[t] in train_groups for t in test) / len(test)
    return Fold(i, tuple(sorted(train)), tuple(sorted(valid)), tuple(sorted(test)), leakage)


def kfold_folds(clipset: ClipSet, ids: list[str], p: ProtocolSpec, group_of) -> list[Fold]:
    from sklearn.model_selection import KFold, StratifiedKFold

    if p.k > len(ids):
        raise ConfigError(f"protocol {p}: K={p.k} exceeds the {len(ids)} clips available")
    strata = _strata(clipset, ids)
    counts = defaultdict(int)
    for s in strata:
        counts[s] += 1
    if clipset.task.spec.kind in ("multiclass", "regression") and min(counts.values()) >= p.k:
        splitter = StratifiedKFold(p.k, shuffle=True, random_state=p.seed)
    else:  # some class (target bin) is too rare to stratify (or multilabel): plain shuffled folds
        splitter = KFold(p.k, shuffle=True, random_state=p.seed)
    tests = [[ids[j] for j in te] for _, te in splitter.split(ids, strata)]
    return _folds_from_test_sets(clipset, ids, tests, p.seed, group_of)


def group_kfold_folds(clipset: ClipSet, ids: list[str], p: ProtocolSpec, group_of=None) -> list[Fold]:
    """Folds that keep the groups of ``p.field`` apart (``group_of`` is not used: the
    protocol's own field is)."""
    group_of = clipset.attribute(p.field)
    unnamed = [t for t in ids if group_of[t] is None]
    if unnamed:
        raise DataError(
            f"protocol {p}: {len(unnamed)} tracks have no {p.field!r} (first: {unnamed[0]}); "
            "group folds need every track's group"
        )
    groups = sorted({group_of[t] for t in ids})
    if len(groups) < 2:
        raise ConfigError(f"protocol {p}: only {len(groups)} distinct {p.field!r} value(s)")
    if p.k is None:
        tests = [[t for t in ids if group_of[t] == g] for g in groups]
    else:
        from sklearn.model_selection import StratifiedGroupKFold

        if p.k > len(groups):
            raise ConfigError(f"protocol {p}: K={p.k} exceeds the {len(groups)} {p.field} groups")
        splitter = StratifiedGroupKFold(p.k, shuffle=True, random_state=p.seed)
        g = [group_of[t] for t in ids]
        tests = [[ids[j] for j in te] for _, te in splitter.split(ids, _strata(clipset, ids), g)]
    try:
        folds = _folds_from_test_sets(clipset, ids, tests, p.seed, group_of, p.valid == "group")
    except DataError as exc:
        raise DataError(f"protocol {p}: {exc} (leave-one-{p.field}-out over {len(groups)} groups); use "
                        f"more groups, or {replace(p, valid='stratified')} "
                        "for a validation part that shares groups with training") from None
    assert all(f.leakage == 0 for f in folds), "group folds must not share groups"
    return folds


def official_folds(clipset: ClipSet, ids: list[str], p: ProtocolSpec, group_of) -> list[Fold]:
    only = p.k
    task = clipset.task
    off = task.spec.official
    if off is None:
        raise ConfigError(
            f"task {task.ref} has no official split; use one of kfold:K, group-kfold:FIELD, "
            "manifest:PATH"
        )
    n_splits = off.n if off.method else 1
    if only is not None and only >= n_splits:
        raise ConfigError(f"protocol official:{only}: {task.ref} defines {n_splits} official split(s); "
                          f"valid: official, {', '.join(f'official:{n}' for n in range(n_splits))}")
    present = set(ids)
    if off.method:
        folds = []
        for n in range(off.n) if only is None else [only]:
            raw = getattr(task.dataset, off.method)(n)
            parts = {ours: [] for ours in ("train", "valid", "test")}
            for theirs, ours in off.parts.items():
                parts[ours] = [t for t in raw.get(theirs, []) if t in present]
            if not parts["valid"]:
                parts["train"], parts["valid"] = holdout(clipset, parts["train"], VALID_FRACTION, n)
            folds.append(_fold(n, parts["train"], parts["valid"], parts["test"], group_of))
        return folds
    value = {c.track_id: c.split for c in clipset.clips}
    if off.folds == "rotate":
        fold_ids = sorted({value[t] for t in ids}, key=lambda v: (len(v), v))
        k = len(fold_ids)
        folds = []
        for i, f in enumerate(fold_ids):
            nxt = fold_ids[(i + 1) % k]
            train = [t for t in ids if value[t] not in (f, nxt)]
            valid = [t for t in ids if value[t] == nxt]
            test = [t for t in ids if value[t] == f]
            folds.append(_fold(i, train, valid, test, group_of))
        return folds
    train = [t for t in ids if value[t] in off.train]
    valid = [t for t in ids if value[t] in off.valid]
    test = [t for t in ids if value[t] in off.test]
    if not off.valid:
        train, valid = holdout(clipset, train, VALID_FRACTION, 0)
    return [_fold(0, train, valid, test, group_of)]


def manifest_folds(clipset: ClipSet, ids: list[str], p: ProtocolSpec, group_of) -> list[Fold]:
    root = Path(os.path.expanduser(p.path))
    if not root.is_dir():
        raise ConfigError(f"protocol {p}: {root} is not a folder of train/valid/test lists")
    files = {}
    for part, keys in (("train", ("train",)), ("valid", ("valid", "val")), ("test", ("test",))):
        hits = [f for f in sorted(root.iterdir()) if any(k in f.name for k in keys)]
        if len(hits) != 1:
            raise ConfigError(
                f"protocol {p}: expected exactly one file naming {part!r} in {root}, found "
                f"{[h.name for h in hits]}"
            )
        files[part] = hits[0]
    return _from_lists(clipset, ids, p, files, group_of, strict=True)


def named_folds(clipset: ClipSet, ids: list[str], p: ProtocolSpec, group_of) -> list[Fold]:
    task = clipset.task
    named = task.spec.protocols.get(p.path)
    if named is None:
        raise UnknownNameError(f"protocol of {task.name}", p.path,
                               [*task.spec.protocols, *(PROTOCOLS[n].short for n in PROTOCOLS if n != NAMED)])
    for part, f in named.files().items():
        if not f.is_file():
            raise ConfigError(f"protocol {p} of {task.name}: its {part} list {f} is missing; the folder "
                              f"{named.lists} must hold train.txt, valid.txt and test.txt (one track id "
                              "or audio path per line)")
    strict = named.version is None or named.version == task.version
    return _from_lists(clipset, ids, p, named.files(), group_of, strict)


def _from_lists(clipset: ClipSet, ids: list[str], p: ProtocolSpec, files: dict[str, Path], group_of,
                strict: bool) -> list[Fold]:
    """One fold from train/valid/test lists of track ids or audio paths. ``strict``: every
    entry must name a track of the task's index (lists of another version are cut to the
    tracks this one has); tracks of the index that are not on disk are left out as partial."""
    known = {t: t for t in clipset.task.track_ids()}
    for t in list(known):  # a line may be a path to the audio: match on it without suffix, or its stem
        known.setdefault(Path(t).stem, t)
    present = set(ids)
    parts, unknown = {}, []
    for part, f in files.items():
        resolved = []
        for line in read_list(f):
            tid = known.get(line) or known.get(str(Path(line).with_suffix(""))) or known.get(Path(line).stem)
            if tid is None:
                unknown.append(f"{f}: {line}")
            elif tid in present:
                resolved.append(tid)
        parts[part] = resolved
    if unknown and strict:
        raise DataError(
            f"protocol {p}: {len(unknown)} list entries match no track of {clipset.task.ref} "
            f"(first: {unknown[0]}); check that the lists belong to this task and version"
        )
    seen: dict[str, str] = {}
    for part, tids in parts.items():
        for t in tids:
            if t in seen:
                raise DataError(f"protocol {p}: track {t!r} is in both {seen[t]} and {part}")
            seen[t] = part
    return [_fold(0, parts["train"], parts["valid"], parts["test"], group_of)]


def vocabulary(clipset: ClipSet, train: tuple[str, ...]) -> Vocabulary:
    """The tags with at least ``min_tag_count`` positives in ``train``, then the
    ``top_k_tags`` most frequent of them (ties by name), as the MagnaTagATune top-50."""
    spec = clipset.task.spec
    counts = {t: 0 for t in clipset.classes}
    for clip in clipset.subset(train):
        for tag in clip.label:
            counts[tag] += 1
    ranked = sorted(counts, key=lambda t: (-counts[t], t))
    rare = [t for t in ranked if counts[t] < (spec.min_tag_count or 1)]
    kept = [t for t in ranked if t not in rare]
    beyond = kept[spec.top_k_tags:] if spec.top_k_tags else []
    kept = sorted(kept[:spec.top_k_tags] if spec.top_k_tags else kept)
    return Vocabulary(tuple(kept), {
        f"fewer than {spec.min_tag_count or 1} positive(s) in the training part": tuple(sorted(rare)),
        f"beyond the top {spec.top_k_tags} by training frequency": tuple(sorted(beyond)),
    })


def resolve(protocol: str | ProtocolSpec, clipset: ClipSet) -> Split:
    """Cut ``clipset`` under ``protocol``; warns loudly about group leakage."""
    p = parse_protocol(protocol) if isinstance(protocol, str) else protocol
    ids = sorted(c.track_id for c in clipset.clips)
    kind = PROTOCOLS[p.kind]
    group_field = p.field if kind.own_groups else clipset.task.spec.group
    group_of = clipset.attribute(group_field) if group_field and not kind.own_groups else None
    folds = resolve_reference(kind.folds)(clipset, ids, p, group_of)
    for f in folds:
        if not f.train or not f.test:
            raise DataError(
                f"protocol {p} on {clipset.task.ref}: fold {f.index} has an empty "
                f"{'train' if not f.train else 'test'} part with the {len(ids)} clips present"
            )
    spec = clipset.task.spec
    if p.shots is not None:  # no validation part; leakage counted on the drawn clips
        group_of = clipset.attribute(p.field or spec.group) if p.field or spec.group else None
        folds = [_fold(i, train, (), test, group_of)
                 for i, train, test in few_shot_parts(clipset, folds, p.shots, p.draws, p.seed, str(p))]
    if spec.kind == "multilabel" and (spec.top_k_tags or spec.min_tag_count):
        folds = [replace(f, vocabulary=vocabulary(clipset, f.train)) for f in folds]
    fault = known_fault(spec, p)
    if fault:
        warnings.warn(f"KNOWN FAULT of {p} on {clipset.task.ref}: {fault}", ProtocolWarning, stacklevel=2)
    leaky = [f for f in folds if f.leakage > 0]
    if leaky:
        worst = max(f.leakage for f in leaky)
        warnings.warn(
            f"GROUP LEAKAGE: under {p} on {clipset.task.ref}, up to {worst:.0%} of test tracks "
            f"share their {group_field!r} with training tracks in {len(leaky)} of {len(folds)} "
            f"folds; scores will be optimistic. Use group-kfold:{group_field} to prevent it.",
            LeakageWarning,
            stacklevel=2,
        )
    return Split(str(p), tuple(folds), split_hash(folds), group_field)
