"""The kernel choice: ISA-L when it loads, numpy otherwise, logged once, never a crash."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from agent.ec.isal_lib import ENV, choose
from agent.ec.kernels import NUMPY

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import json, logging, sys
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s %(message)s")
from ec_oracle import reedsolo_shards
from agent import ec
from agent.ec import isal_lib
before = ec.codec(4, 2).kernel.name
choice = isal_lib.install()
isal_lib.install()  # a second install neither searches nor logs again
codec = ec.codec(4, 2)
data = bytes(range(256)) * 3 + b"tail"
shards = codec.encode(data)
ec.codec(3, 2).encode(b"a second codec must not log again")
have = {i: shards[i] for i in (1, 3, 4, 5)}
print(json.dumps({
    "before": before,
    "kernel": choice.name,
    "codec_kernel": codec.kernel.name,
    "exact": shards == reedsolo_shards(4, 2, data),
    "decodes": codec.decode(have, len(data)) == data,
}))
"""


def probe(value: str | None) -> tuple[dict[str, object], list[str]]:
    env = {k: v for k, v in os.environ.items() if k != ENV}
    if value is not None:
        env[ENV] = value
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "tests" / "ec")])
    run = subprocess.run(
        [sys.executable, "-c", PROBE],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    lines = [line for line in run.stderr.splitlines() if line.startswith("agent.ec ")]
    return json.loads(run.stdout), lines


def test_pointing_the_search_at_nothing_falls_back_to_numpy_with_one_line() -> None:
    report, lines = probe("none")
    assert report == {
        "before": "numpy",
        "kernel": "numpy",
        "codec_kernel": "numpy",
        "exact": True,
        "decodes": True,
    }
    assert lines == ["agent.ec erasure-code kernel: numpy, ISA-L turned off by RACKCLOUD_EC_ISAL"]


def test_a_library_that_cannot_load_falls_back_with_one_line_and_no_crash() -> None:
    report, lines = probe("/nonexistent/libisal.so.2")
    assert report["kernel"] == "numpy"
    assert report["exact"] is True
    assert len(lines) == 1
    assert lines[0].startswith(
        "agent.ec erasure-code kernel: numpy, ISA-L not used: /nonexistent/libisal.so.2 "
        "(RACKCLOUD_EC_ISAL) cannot be loaded"
    )


def test_the_default_search_takes_isal_when_it_loads() -> None:
    report, lines = probe(None)
    default = choose({})  # the search with the variable unset, as the probe runs it
    want = default.name
    assert report == {
        "before": "numpy",  # the pure codec uses numpy until the entry point installs
        "kernel": want,
        "codec_kernel": want,
        "exact": True,
        "decodes": True,
    }
    assert len(lines) == 1
    if default.library:
        assert lines[0].startswith(f"agent.ec erasure-code kernel: isal, {default.library} (")


def test_choose_reports_what_it_passed_over() -> None:
    off = choose({ENV: "none"})
    assert (off.kernel, off.library, off.searched, off.refused) == (NUMPY, None, False, ())
    missing = choose({ENV: "/nonexistent.so"})
    assert missing.kernel is NUMPY
    assert missing.searched is True
    assert len(missing.refused) == 1
    assert missing.describe() == f"erasure-code kernel: numpy, ISA-L not used: {missing.refused[0]}"
