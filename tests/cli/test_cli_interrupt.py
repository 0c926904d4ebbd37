"""Ctrl-C during ``fit`` stops training cleanly and leaves the store as it was."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from conftest import tree_hashes


def test_ctrl_c_stops_cleanly_and_keeps_the_store(demo_store):
    before = tree_hashes(demo_store)
    command = [sys.executable, "-m", "napari_topomics.cli", "fit", str(demo_store),
               "--epochs", "500", "--topics", "3", "--threads", "1"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    # wait until the progress bar shows training has started
    started = time.monotonic()
    seen = ""
    while "batch" not in seen and time.monotonic() - started < 120:
        line = process.stderr.readline()
        if not line and process.poll() is not None:
            break
        seen += line
        if "fitting" in line:
            break
    assert process.poll() is None, seen
    time.sleep(2.0)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "stopped" in err.lower()
    assert "Traceback" not in err
    assert tree_hashes(demo_store) == before
