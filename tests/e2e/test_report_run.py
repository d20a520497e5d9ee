"""Reports of a real run: from the run folder and from MLflow alike, and as HTML in a real browser."""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest

from musicbench.cli import main
from musicbench.report import tables
from musicbench.report.load import load_experiment, load_folders

SUITE = "report_e2e"
CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="Chromium is not installed (apt-get install chromium): the HTML report cannot be opened in a "
           "real browser here",
)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A real two-system run of the mini synthetic task, logged to the session's MLflow store."""
    ws = tmp_path_factory.mktemp("workspace")
    (ws / "bench" / "suites").mkdir(parents=True)
    (ws / "bench" / "suites" / f"{SUITE}.toml").write_text(
        'tasks = ["synth_genre:mini"]\nsystems = ["mfcc-stats-svm", "mfcc-stats-knn"]\n'
        'protocols = ["kfold:3"]\nseeds = [0]\n')
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MUSICBENCH_WORKSPACE", str(ws))
        assert main(["run", "--suite", SUITE, "--out", str(ws / "run"), "--quiet"]) == 0
    return ws / "run"


def test_mlflow_and_folder_give_the_same_report(run_dir, tmp_path):
    from_folder = load_folders([run_dir])
    from_mlflow = load_experiment(SUITE, artifact_dir=tmp_path)
    assert len(from_mlflow) == len(from_folder) == 6
    cols = ["system", "accuracy_mean", "accuracy_ci_low", "cells", "vs_best", "p_value"]
    a = tables.leaderboard(from_folder)[cols].sort_values("system").reset_index(drop=True)
    b = tables.leaderboard(from_mlflow)[cols].sort_values("system").reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)
    assert a["vs_best"].isin(["best", "tied", "worse"]).all()  # predictions came back from MLflow
    pc_a = tables.per_class(from_folder).sort_values(["system", "class"])["recall_mean"].to_numpy()
    pc_b = tables.per_class(from_mlflow).sort_values(["system", "class"])["recall_mean"].to_numpy()
    np.testing.assert_allclose(pc_a, pc_b)


def test_cli_report_from_experiment(run_dir, tmp_path, capsys):
    assert main(["report", "--experiment", SUITE, "--format", "json", "--out", str(tmp_path)]) == 0
    assert "mfcc-stats-knn" in capsys.readouterr().out
    assert main(["report", "--experiment", "no-such-suite"]) == 2


class _Dom(HTMLParser):
    """Counts what the browser kept of the page: tables, rows, headings and embedded images."""

    def __init__(self):
        super().__init__()
        self.tags: dict[str, int] = {}
        self.images: list[str] = []
        self.headings: list[str] = []
        self._in_heading = False

    def handle_starttag(self, tag, attrs):
        self.tags[tag] = self.tags.get(tag, 0) + 1
        if tag == "img":
            self.images.append(dict(attrs).get("src", ""))
        self._in_heading = tag in ("h1", "h2", "h3")

    def handle_endtag(self, tag):
        self._in_heading = False

    def handle_data(self, data):
        if self._in_heading and data.strip():
            self.headings.append(data.strip())


def _chromium(tmp_path, *args: str) -> subprocess.CompletedProcess:
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--hide-scrollbars", f"--user-data-dir={tmp_path / 'profile'}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


@needs_chromium
def test_html_report_renders_in_chromium(run_dir, tmp_path):
    out = tmp_path / "report"
    assert main(["report", str(run_dir), "--format", "html", "--out", str(out)]) == 0
    page = (out / "report.html").resolve()
    assert "http" not in page.read_text().replace("https://", "").split("<body>")[0]  # nothing remote

    dom = _chromium(tmp_path, "--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    parsed = _Dom()
    parsed.feed(dom.stdout)
    assert {"Leaderboard", "Per class", "Throughput"} <= set(parsed.headings)
    assert parsed.tags.get("table", 0) >= 3
    assert parsed.tags.get("tr", 0) >= 3 + 2 + 6  # headers, two systems, six classes
    # Two confusion matrices and the accuracy-vs-throughput figure, embedded, not linked.
    assert len(parsed.images) == 3
    assert all(src.startswith("data:image/png;base64,") and len(src) > 5000 for src in parsed.images)
    assert "★" in dom.stdout and "mfcc-stats-knn" in dom.stdout

    shot = tmp_path / "page.png"
    res = _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,7000", page.as_uri())
    assert res.returncode == 0 and shot.is_file(), res.stderr[-2000:]
    from matplotlib.image import imread

    pixels = imread(shot)[..., :3]
    # The confusion matrices are drawn in blues: decoded figures paint many such pixels,
    # broken images or an unstyled page none.
    blue = (pixels[..., 2] - pixels[..., 0] > 0.3).sum()
    assert blue > 20_000, f"only {blue} blue pixels: the embedded figures did not render"
    green_rows = ((pixels[..., 1] > 0.94) & (pixels[..., 0] < 0.93) & (pixels[..., 2] < 0.93)).sum()
    assert green_rows > 1_000, "the best row is not highlighted: the stylesheet did not apply"
