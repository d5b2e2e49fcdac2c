"""``bench/ec.py --quick`` runs and reports every contender (no speed assertions)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from ec_kernels import CHOICE

from agent.ec.kernels import ENV

BENCH = Path(__file__).resolve().parents[2] / "bench" / "ec.py"
OPS = {"encode", "decode_1", "decode_m", "decode_1_joined", "decode_m_joined"}


def run_bench(env: dict[str, str]) -> dict[str, Any]:
    run = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--repeats", "1"],
        check=True,
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
    )
    report: dict[str, Any] = json.loads(run.stdout)
    return report


def test_quick_bench_reports_every_geometry_size_and_contender() -> None:
    report = run_bench(dict(os.environ))
    assert set(report["results"]) == {"3+2", "4+2", "8+3", "10+4"}
    assert report["checks_ok"] is True
    assert report["kernel"] == CHOICE.name
    for sizes in report["results"].values():
        assert set(sizes) == {"4KiB", "64KiB"}
        for entry in sizes.values():
            assert entry["checks_ok"] is True, entry["checks"]
            assert set(entry["rs_numpy"]) == OPS
            assert set(entry["memcpy"]) == {"copy"}
            if CHOICE.library:
                assert set(entry["rs_isal"]) == OPS
                assert set(entry["isal_direct"]) == OPS
                assert entry["checks"]["rs_isal_shards_equal_rs_numpy"] is True
                assert set(entry["threads"]["speedup"]) == {"encode", "decode_1", "decode_m"}
                assert set(entry["ratios"]["rs_isal_vs_isal_direct"]) == OPS
            if "zfec" in entry:
                assert set(entry["zfec"]) == OPS
    assert set(report["reedsolo_floor"]["4+2"]) == {"object_bytes", "encode", "decode_m"}
    assert report["goals"] == {"measured": False}  # --quick has no 1 MiB shards


def test_without_isal_the_bench_still_runs_on_numpy() -> None:
    report = run_bench({**os.environ, ENV: "none"})
    assert report["kernel"] == "numpy"
    assert report["isal_library"] is None
    assert report["checks_ok"] is True
    entry = report["results"]["4+2"]["64KiB"]
    assert "rs_isal" not in entry
    assert set(entry["rs_numpy"]) == OPS
