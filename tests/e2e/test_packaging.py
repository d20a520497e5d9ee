"""The wheel carries the presets inside the package and installs no colliding top-level names."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile

from helpers import REPO


def test_wheel_ships_presets_and_finds_them_when_installed(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path), str(REPO)], check=True, timeout=300)
    (wheel,) = tmp_path.glob("musicbench-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert not tops & {"datasets", "systems", "bench", "reports", "tests"}
    for kind, folder in (("datasets", "datasets"), ("systems", "systems"), ("suites", "bench/suites"),
                         ("encoders", "encoders")):
        prefix = f"musicbench/presets/{kind}/"
        shipped = {n.removeprefix(prefix) for n in names if n.startswith(prefix)}
        on_disk = {str(p.relative_to(REPO / folder)) for p in (REPO / folder).rglob("*") if p.is_file()}
        assert shipped == on_disk, kind  # split lists in subfolders too
    assert "musicbench/presets/datasets/splits/gtzan_genre/fault-filtered/test.txt" in names
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site), "MUSICBENCH_WORKSPACE": str(work)}
    out = subprocess.run([sys.executable, "-c", "import musicbench.presets as p, json; "
                          "print(json.dumps({k: sorted(p.preset_files(k)) for k in p.KINDS}))"],
                         cwd=work, env=env, capture_output=True, text=True, check=True)
    assert "mfcc-stats-svm" in out.stdout and "synth_genre" in out.stdout and "demo" in out.stdout
    assert str(site) in subprocess.run(
        [sys.executable, "-c", "import musicbench.presets as p; print(p.preset_files('system')"
         "['mfcc-stats-svm'])"], cwd=work, env=env, capture_output=True, text=True).stdout


def test_workspace_presets_extend_and_override(tmp_path, monkeypatch):
    from musicbench.presets import load_preset, preset_files

    (tmp_path / "systems").mkdir()
    (tmp_path / "systems" / "mfcc-stats-svm.toml").write_text(
        'family = "classical"\ndescription = "mine"\n[params]\nC = 3.0\n')
    (tmp_path / "systems" / "my-knn.toml").write_text('family = "classical"\n[params]\n')
    monkeypatch.setenv("MUSICBENCH_WORKSPACE", str(tmp_path))
    assert "my-knn" in preset_files("system")
    assert load_preset("system", "mfcc-stats-svm")["description"] == "mine"
