"""``bench/ec.py --quick`` still runs and reports every contender (no speed assertions)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "ec.py"


def test_quick_bench_reports_all_configs() -> None:
    run = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--repeats", "1"],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    report = json.loads(run.stdout)
    assert set(report["results"]) == {"3+2", "4+2", "8+3"}
    for entry in report["results"].values():
        assert entry["roundtrip_ok"]["rs"] is True
        assert set(entry["rs"]) == {"encode", "decode"}
        assert entry["rs"]["encode"] > 0
        if "zfec" in entry:
            assert set(entry["ratio_rs_zfec"]) == {"encode", "decode"}
    assert isinstance(report["goal_rs_at_least_zfec"], bool)
