"""``musicbench data status`` and ``data fetch``: counts, checksums, offline errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

from helpers import SHARED, needs_shared


def cli(*args, cwd, env=None):
    return subprocess.run([sys.executable, "-m", "musicbench", *args], cwd=cwd, text=True,
                          capture_output=True, timeout=300, env=env or dict(os.environ))


@needs_shared
def test_status_counts_partial_real_data(tmp_path):
    res = cli("data", "status", "mridangam_stroke", "--data-home", str(SHARED / "data"),
              "--index-dir", str(SHARED / "indexes"), "--json", cwd=tmp_path)
    assert res.returncode == 1, res.stderr  # tracks missing
    status = json.loads(res.stdout)
    assert (status["in_index"], status["on_disk"], status["missing"]) == (6976, 2879, 4097)
    assert status["bad_checksum"] == 0


@needs_shared
def test_status_reports_bad_checksums(tmp_path):
    home = tmp_path / "mridangam_stroke"
    shutil.copytree(SHARED / "mirdata_sample" / "resources" / "mridangam_stroke", home)
    (wav,) = home.rglob("*.wav")
    data = bytearray(wav.read_bytes())
    data[-100] ^= 0xFF
    wav.write_bytes(bytes(data))
    res = cli("data", "status", "mridangam_stroke:sample", "--data-home", str(tmp_path),
              "--index-dir", str(SHARED / "mirdata_sample" / "indexes"), cwd=tmp_path)
    assert res.returncode == 1, res.stderr
    assert "bad md5     1" in res.stdout and "  bad md5   224030" in res.stdout


def test_status_of_the_synthetic_task(tmp_path):
    res = cli("data", "status", "synth_genre:mini", "--json", cwd=tmp_path)
    status = json.loads(res.stdout)
    assert status["in_index"] == status["on_disk"] == 72 and status["bad_checksum"] == 0


@needs_shared
def test_fetch_offline_gives_an_actionable_error(tmp_path):
    # a proxy on a closed local port makes every download fail at once, as offline
    env = {**os.environ, "http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9",
           "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9"}
    res = cli("data", "fetch", "mridangam_stroke", "--data-home", str(tmp_path / "home"),
              "--index-dir", str(SHARED / "indexes"), cwd=tmp_path, env=env)
    assert res.returncode == 2, res.stderr
    assert "offline" in res.stderr and "Traceback" not in res.stderr
    assert str(tmp_path / "home") in res.stderr
