"""What `import lth_keras` loads: nothing heavy until a name is used, and never the paper's kit."""

import json
import subprocess
import sys

from tests.helpers.cli import ROOT

PROBE = """
import json, os, sys
import lth_keras
before = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "tf_keras", "lth_keras"))
names = {name: type(getattr(lth_keras, name)).__name__ for name in lth_keras.__all__}
kit = [m for m in sys.modules if m.split(".")[0] in ("tensorflow_datasets", "mnist1d")]
kit += [m for m in sys.modules if m.startswith("lth_keras.paper")]
env = os.environ["TF_USE_LEGACY_KERAS"]
print(json.dumps({"before": before, "names": names, "kit": sorted(kit), "env": env}))
"""


def test_import_is_light_every_public_name_resolves_and_the_kit_stays_out():
    result = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["before"] == ["lth_keras"]  # no TensorFlow, no tf_keras, no submodule yet
    assert seen["env"] == "1"  # set before anything can import TensorFlow
    assert seen["names"]["LotteryTicketCallback"] == "type" and seen["names"]["keras"] == "module"
    assert seen["kit"] == []  # the core never imports lth_keras.paper, TFDS or mnist1d


NEUTRAL = """
import json, sys
import lth_keras.callback, lth_keras.rounds, lth_keras.tickets, lth_keras.masks, lth_keras.adapters
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules} & {"tensorflow", "tf_keras", "keras"})))
"""


def test_the_round_engine_and_tickets_import_no_keras_and_no_tensorflow():
    """What every framework shares loads none: a Keras 3 user on JAX never pays TensorFlow's import."""
    result = subprocess.run(
        [sys.executable, "-c", NEUTRAL], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
