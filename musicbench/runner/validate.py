"""Everything a run needs, checked before its first cell: seeds, device, protocols,
augmentations, parameters, tuned studies, every task's version and data (present,
undamaged) with each protocol resolved on it, and the tracking URI (``open_tracking``, by
the runner, only where a run has something to log). Bad input is refused with one
message naming the value or file and what is valid, and nothing is written."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from musicbench.augment import validate_spec
from musicbench.errors import ConfigError, DataAbsent
from musicbench.protocol.experiment import TaskSource, open_clips, resolve_split
from musicbench.protocol.splits import Split, parse_protocol
from musicbench.results.tracking import Tracker
from musicbench.runner.suite import Suite
from musicbench.runtime import check_device
from musicbench.systems import System, build_system

MAX_SEED = 2**32 - 1  # numpy's seed range


def check_seeds(seeds: Iterable[int]) -> None:
    seeds = list(seeds)
    if not seeds:
        raise ConfigError("no seeds given; expected integers like 0,1,2")
    bad = [s for s in seeds if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s <= MAX_SEED]
    if bad:
        raise ConfigError(f"seed(s) {', '.join(map(repr, bad))}: a seed is an integer from 0 to {MAX_SEED}")
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    if repeated:
        raise ConfigError(f"seed(s) {', '.join(map(str, repeated))} given more than once; each seed is "
                          "one set of cells")


def check_tuned(suite: Suite) -> None:
    """A tuned study must be for a system the run includes, or its parameters go nowhere."""
    for system, tuned in suite.tuned.items():
        if system not in suite.systems:
            raise ConfigError(
                f"study {tuned.get('study')!r} tuned system {system!r}, which this run does not "
                f"include (systems: {', '.join(suite.systems)}); add --system {system} or pick the "
                "study of one of these")


def open_tracking(experiment: str, uri: str | None) -> Tracker:
    """The MLflow store of ``uri``, open on ``experiment`` (a scheme MLflow knows, a store
    it can create); the run logs through it."""
    from musicbench.results.tracking import Tracker, default_tracking_uri

    uri = uri or default_tracking_uri()
    try:
        return Tracker(experiment, uri)
    except Exception as exc:  # noqa: BLE001 - MLflow raises several kinds for a bad URI
        raise ConfigError(f"tracking URI {uri!r} cannot be used ({str(exc).splitlines()[0].strip()}); "
                          "valid: sqlite:///PATH, file:PATH, http(s)://HOST:PORT, postgresql://..., "
                          "or --no-mlflow") from None


@dataclass
class ResolvedSplit:
    """A protocol resolved on a task's clips, and the warnings to log where it is planned."""

    split: Split
    warnings: list[str]


@dataclass
class Validated:
    """What validation built and resolved, for planning to use rather than do again: the
    sources to run, each system built once (unseeded), each (source, protocol) split."""

    sources: list[TaskSource]
    systems: dict[str, System] = field(default_factory=dict)
    splits: dict[tuple[TaskSource, str], ResolvedSplit] = field(default_factory=dict)


def check_task(source: TaskSource, protocols: tuple[str, ...], systems: dict[str, System],
               by_kind: bool = False, log: Callable[[str], None] = print) -> dict[str, ResolvedSplit]:
    """The task's version and data, each protocol resolved on the clips present (fold
    counts, group fields, manifest files), and each system able to handle its kind (with
    ``by_kind``, those that cannot are left out of the task and logged; none left is an
    error). Returns the resolved splits by protocol."""
    clipset = open_clips(source)
    splits = {}
    for protocol in protocols or (clipset.task.spec.default_protocol,):
        messages: list[str] = []
        splits[protocol] = ResolvedSplit(resolve_split(protocol, clipset, messages.append), messages)
    kind = clipset.task.spec.kind
    unfit = ["{} ({} tasks only)".format(name, " and ".join(system.kinds))
             for name, system in systems.items() if kind not in system.kinds]
    if unfit and by_kind and len(unfit) < len(systems):
        log(f"{source.ref} is {kind}: left out for {', '.join(unfit)}")
    elif unfit:
        raise ConfigError(f"task {source.ref} is {kind}, which system(s) {', '.join(unfit)} do not "
                          "handle; run them on other tasks, in a suite of their own"
                          + ("" if by_kind else " or with by_kind = true"))
    return splits


def validate_run(suite: Suite, sources: list[TaskSource], device: str,
                 log: Callable[[str], None] = print) -> Validated:
    """Raise on the first thing that would make a cell fail for a reason known up front
    (the tracking URI is opened by the runner, where it is used). Returns the sources to
    run (all of them, less those whose data is absent where the suite says
    ``skip_absent``, each logged with the reason), with the systems and splits built."""
    check_seeds(suite.seeds)
    check_device(device)
    for spec in suite.protocols:
        parse_protocol(spec)
    for spec in (*suite.augment, *suite.deform):
        if spec != "none":
            validate_spec(spec)
    systems = {}
    for name in suite.systems:
        preset, overrides = suite.resolve_system(name)
        systems[name] = build_system(preset, device=device, **overrides)
    check_tuned(suite)
    validated = Validated([], systems)
    for source in sources:
        try:
            splits = check_task(source, suite.protocols, systems, suite.by_kind, log)
        except DataAbsent as exc:
            if not suite.skip_absent:
                raise
            log(f"SKIPPED {source.ref}: its data is absent here ({exc})")
            continue
        validated.sources.append(source)
        validated.splits.update({(source, protocol): split for protocol, split in splits.items()})
    if not validated.sources:
        raise DataAbsent(f"suite {suite.name}: the data of none of its tasks ({', '.join(suite.tasks)}) is "
                         "here; see the reasons above")
    return validated
