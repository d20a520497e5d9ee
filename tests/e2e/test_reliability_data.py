"""Damaged data and faults: bad tracks refused or skipped (and recorded), integrity checks
at run time, ``data status`` listing every failing id, extraction workers that die with
their parent, progress on a non-terminal, extraction time booked apart, generated data
kept out of the data home.

Real mridangam strokes are copied from the shared data into a temporary dataset with its
own index, beside generated bad files: random bytes, silence and a truncated copy.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from musicbench.cli import main

from helpers import REPO, SHARED, needs_shared

TASK = "mridangam_stroke"
BAD = {"900001": "random", "900002": "silent", "900003": "truncated"}


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def strokes(root: Path, bad: bool = True, per_class: int = 8) -> tuple[Path, Path]:
    """(data home, index folder): ``per_class`` real strokes of three classes, and with
    ``bad`` one random-bytes, one silent and one truncated file in the index too."""
    index = json.loads((SHARED / "indexes" / "mridangam_stroke_index_1.5.json").read_text())
    data = SHARED / "data"
    home = root / "data" / "mridangam_stroke"
    tracks, counts = {}, {}
    for track_id, entry in index["tracks"].items():
        rel, md5 = entry["audio"]
        stroke = rel.split("__")[2].split("-")[0]
        if stroke not in ("cha", "dheem", "num") or counts.get(stroke, 0) >= per_class:
            continue
        if not (data / rel).is_file():
            continue
        counts[stroke] = counts.get(stroke, 0) + 1
        (home / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(data / rel, home / rel)
        tracks[track_id] = {"audio": [rel, md5]}
    if bad:
        source = home / next(iter(tracks.values()))["audio"][0]
        rng = np.random.default_rng(0)
        for track_id, kind in BAD.items():
            rel = f"mridangam_stroke_1.5/B/{track_id}__test__cha-b-{kind}.wav"
            path = home / rel
            if kind == "random":
                path.write_bytes(rng.bytes(20000))
            elif kind == "silent":
                sf.write(path, np.zeros(22050, dtype=np.float32), 44100, subtype="PCM_16")
            else:
                path.write_bytes(source.read_bytes()[: source.stat().st_size // 3])
            tracks[track_id] = {"audio": [rel, _md5(path)]}
    index_dir = root / "indexes"
    index_dir.mkdir(parents=True, exist_ok=True)
    (index_dir / "mridangam_stroke_index_1.5.json").write_text(json.dumps({"version": "1.5",
                                                                           "tracks": tracks}))
    return home.parent, index_dir


def run(home: Path, index: Path, out: Path, *extra: str) -> int:
    return main(["run", "--task", TASK, "--system", "mfcc-stats-svm", "--protocol", "kfold:3",
                 "--data-home", str(home), "--index-dir", str(index), "--out", str(out), "--no-mlflow",
                 *extra])


@needs_shared
def test_bad_tracks_are_refused_up_front_by_default(tmp_path, capsys):
    home, index = strokes(tmp_path)
    assert run(home, index, tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert "3 track(s) cannot be used" in err and "--on-bad-track skip" in err
    assert "900001: cannot be decoded" in err
    assert "900002: is silent" in err
    assert "900003: truncated: the header declares" in err
    assert not (tmp_path / "out").exists()


@needs_shared
def test_with_skip_bad_tracks_are_left_out_listed_and_recorded(tmp_path, capsys):
    """Every cell runs on the good strokes; each result names the tracks left out, and its
    split is the one the good strokes alone give."""
    home, index = strokes(tmp_path)
    assert run(home, index, tmp_path / "out", "--on-bad-track", "skip") == 0
    err = capsys.readouterr().err
    assert "left out 3 damaged track(s) (--on-bad-track skip)" in err
    df = pd.read_csv(tmp_path / "out" / "results.csv", dtype={"bad_tracks": str})
    assert len(df) == 3 and (df.status == "ok").all()
    assert (df.n_bad_tracks == 3).all() and (df.bad_tracks == "900001 900002 900003").all()
    assert (df.n_tracks_used == 24).all() and (df.n_tracks_index == 27).all()

    clean_home, clean_index = strokes(tmp_path / "clean", bad=False)
    assert run(clean_home, clean_index, tmp_path / "clean-out") == 0
    clean = pd.read_csv(tmp_path / "clean-out" / "results.csv")
    assert set(df.split_hash) == set(clean.split_hash)
    assert clean.n_bad_tracks.eq(0).all()


@needs_shared
def test_skip_is_also_a_task_setting(tmp_path, capsys, monkeypatch):
    home, index = strokes(tmp_path)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "datasets").mkdir()
    spec = (REPO / "datasets" / "mridangam_stroke.toml").read_text()
    (tmp_path / "datasets" / "mridangam_stroke.toml").write_text(
        spec.replace('default_protocol =', 'on_bad_track = "skip"\ndefault_protocol ='))
    assert run(home, index, tmp_path / "out") == 0
    assert (pd.read_csv(tmp_path / "out" / "results.csv").n_bad_tracks == 3).all()


@needs_shared
def test_verify_checks_every_file_against_the_index(tmp_path, capsys):
    """A flipped byte in the samples decodes fine; only the checksum sees it."""
    home, index = strokes(tmp_path, bad=False)
    wav = sorted(home.rglob("*.wav"))[0]
    data = bytearray(wav.read_bytes())
    data[len(data) // 2] ^= 0x01
    wav.write_bytes(bytes(data))
    assert run(home, index, tmp_path / "out", "--verify") == 2
    err = capsys.readouterr().err
    assert f"{wav.name.split('__')[0]}: checksum" in err and "differs from the index's" in err
    assert not (tmp_path / "out").exists()
    assert run(home, index, tmp_path / "out") == 0


@needs_shared
def test_data_status_lists_every_failing_id_and_fails(tmp_path, capsys):
    home, index = strokes(tmp_path)
    real = sorted(p for p in home.rglob("*.wav") if p.name.split("__")[0] not in BAD)
    for wav in real[:6]:  # six that still decode, failing their md5
        data = bytearray(wav.read_bytes())
        data[len(data) // 2] ^= 0x01
        wav.write_bytes(bytes(data))
    missing = real[-1]
    missing.unlink()
    rc = main(["data", "status", TASK, "--data-home", str(home), "--index-dir", str(index)])
    out = capsys.readouterr().out
    assert rc == 1
    assert "bad md5     6" in out and "damaged     3" in out and "missing     1" in out
    assert len([x for x in out.splitlines() if x.startswith("  bad md5")]) == 6
    for track_id in BAD:
        assert f"  damaged   {track_id}:" in out
    assert f"  missing   {missing.name.split('__')[0]}" in out
    clean_home, clean_index = strokes(tmp_path / "clean", bad=False)
    assert main(["data", "status", TASK, "--data-home", str(clean_home), "--index-dir",
                 str(clean_index)]) == 0


# -- faults -----------------------------------------------------------------------------------

def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _describe(pid: int) -> str:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[:2]
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        return f"{' '.join(state)} {cmdline[:100]}"
    except OSError:
        return "gone"


def test_extraction_workers_exit_when_their_parent_is_killed(tmp_path):
    script = textwrap.dedent("""
        from musicbench.features import FrontEnd, extract_frames
        from musicbench.tasks import get_task

        clips = get_task("synth_genre:1.0").clips()
        data = clips.part([c.track_id for c in clips.clips])
        fe = FrontEnd("mfcc", 22050)
        print("extracting", flush=True)
        while True:  # no cache: every pass extracts again
            extract_frames(data, [fe], cache=None, n_jobs=2)
    """)
    env = {**os.environ, "PYTHONPATH": str(REPO), "MUSICBENCH_PROGRESS_SECONDS": "0"}
    parent = subprocess.Popen([sys.executable, "-c", script], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert parent.stdout.readline().strip() == "extracting"
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:  # progress lines: kill once workers have delivered clips
            if select.select([parent.stderr], [], [], 1.0)[0]:
                if parent.stderr.readline().startswith("features mfcc (synth_genre): 40/"):
                    break
        workers = [p for p in _descendants(parent.pid) if "popen_loky_posix" in _describe(p)]
        assert len(workers) == 2, _describe(parent.pid)
        everyone = _descendants(parent.pid)
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    deadline = time.monotonic() + 15
    while any(map(_alive, everyone)) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = {p: _describe(p) for p in everyone if _alive(p)}
    for p in left:
        os.kill(p, signal.SIGKILL)
    assert not left, f"outlived the killed parent: {left}"


def test_progress_reaches_a_non_terminal_and_extraction_is_booked_apart(tmp_path):
    """Output redirected, a fresh cache: plain progress lines, and the extraction done
    before the cells reported on its own, not in any cell's fit time."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "MUSICBENCH_CACHE": str(tmp_path / "cache"),
           "MUSICBENCH_PROGRESS_SECONDS": "0"}
    cmd = [sys.executable, "-m", "musicbench", "run", "--task", "synth_genre:mini", "--system",
           "mfcc-stats-svm", "--protocol", "kfold:3", "--no-mlflow"]
    res = subprocess.run([*cmd, "--out", "first"], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stderr
    lines = [x for x in res.stderr.splitlines() if x.startswith("features mfcc (synth_genre):")]
    assert len(lines) >= 3 and lines[0].startswith("features mfcc (synth_genre): 0/")
    first, first_err = pd.read_csv(tmp_path / "first" / "results.csv"), res.stderr
    res = subprocess.run([*cmd, "--out", "again"], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stderr
    assert (pd.read_csv(tmp_path / "again" / "results.csv").status == "ok").all()
    extracted = [float(re.search(r"extracted before the cells in ([0-9.]+) s", r).group(1))
                 for r in (first_err, res.stderr)]
    assert extracted[0] > 5 * extracted[1]  # the second run found every clip in the cache
    assert first.fit_seconds.max() < extracted[0]
    assert (first.extract_seconds < extracted[0]).all()


def test_generated_data_stays_out_of_the_data_home(tmp_path):
    home = tmp_path / "lab-datasets"
    home.mkdir()
    home.chmod(0o555)  # shared lab folders are often read-only
    try:
        assert main(["run", "--task", "synth_genre:mini", "--system", "gmm", "--protocol", "kfold:3",
                     "--data-home", str(home), "--out", str(tmp_path / "out"), "--no-mlflow",
                     "--quiet"]) == 0
        assert list(home.iterdir()) == []
        assert "MUSICBENCH_QUIET" not in os.environ  # --quiet held for that command only
    finally:
        home.chmod(0o755)
