"""Memory: process RSS after 100 reloads stays within 10% of RSS after 10 (old versions are freed).

Keras models are full of reference cycles, so a retired version is freed by the
cycle collector, whose full passes are rare in a process with TensorFlow's
~400k long-lived objects (about 10 retired versions wait for one here). The
server collects after each reload drains (yyai.serving.release_when_idle); the
script does the same after each reload, so what grows is a version that is
still referenced, or native memory that is never given back: a leak.
"""
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SCRIPT = """
import gc
import sys
from pathlib import Path
import numpy as np
import keras
from yyai.runtime.model_util import ModelUtil
from yyai.runtime.servable import ServingVersion

def rss_kib():
    return int(next(l for l in open("/proc/self/status") if l.startswith("VmRSS")).split()[1])

app = Path(sys.argv[1]) / "app"
inputs = keras.Input(shape=(64, 64, 1))
x = keras.layers.Flatten()(inputs)
keras.Model(inputs, keras.layers.Dense(256)(x)).save(app / "m.keras")  # 1 M parameters, 4 MB
util = ModelUtil(app)
util.load()
batch = np.ones((4, 64, 64, 1), np.float32)
for i in range(1, 101):
    util.reload()
    util.predict(batch)
    gc.collect()
    if i == 10:
        after_10 = rss_kib()
print(sum(isinstance(o, ServingVersion) for o in gc.get_objects()), after_10, rss_kib())
"""


def test_rss_flat_over_100_reloads(tmp_path):
    (tmp_path / "app").mkdir()
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[2], timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    versions, after_10, after_100 = map(int, done.stdout.split()[-3:])
    assert versions == 1, f"{versions} versions alive after 100 reloads; only the serving one should be"
    assert after_100 <= after_10 * 1.10, f"RSS grew from {after_10} KiB (10 reloads) to {after_100} KiB (100)"
