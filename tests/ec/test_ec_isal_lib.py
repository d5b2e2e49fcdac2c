"""Where ISA-L is looked for, in which order, and how each refusal reads."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from ec_kernels import CHOICE

from agent.ec import isal_lib
from agent.ec.isal_lib import ENV, Candidate, candidates, load, search_enabled


def test_the_default_search_is_the_system_soname_then_pyeclibs_copy() -> None:
    found = candidates({})
    assert found[0] == Candidate("system", "libisal.so.2")
    assert all(c.source == "pyeclib" for c in found[1:])
    for c in found[1:]:
        assert Path(c.path).parent.name == "pyeclib.libs"
        assert Path(c.path).name.startswith("libisal")


def test_pyeclibs_copy_is_found_when_pyeclib_is_installed() -> None:
    pytest.importorskip("pyeclib", reason="pyeclib (a dev dependency) is not installed")
    assert any(c.source == "pyeclib" for c in candidates({}))


def test_the_variable_names_one_library_or_turns_the_search_off() -> None:
    assert candidates({ENV: "/opt/isal/libisal.so.2"}) == [Candidate(ENV, "/opt/isal/libisal.so.2")]
    for off in ("none", "NONE", "", "  "):
        assert candidates({ENV: off}) == []
        assert search_enabled({ENV: off}) is False
    assert search_enabled({}) is True


def test_a_missing_file_and_a_library_without_the_symbols_are_refused() -> None:
    libc = "libc.so.6"
    result = load([Candidate(ENV, "/nonexistent/libisal.so.2"), Candidate(ENV, libc)])
    assert result.library is None
    assert result.refused[0].startswith("/nonexistent/libisal.so.2 (RACKCLOUD_EC_ISAL) cannot")
    assert "lacks a symbol" in result.refused[1]
    assert "ec_init_tables" in result.refused[1]


def test_the_first_library_that_loads_wins() -> None:
    if CHOICE.library is None:
        pytest.skip(f"no ISA-L here: {CHOICE.describe()}")
    result = load([Candidate(ENV, "/nonexistent.so"), Candidate(ENV, CHOICE.library)])
    assert result.library is not None
    assert result.library.path == CHOICE.library
    assert len(result.refused) == 1


WRONG = r"""
#include <string.h>
void ec_init_tables(int k, int rows, unsigned char *a, unsigned char *g) {}
void ec_encode_data(int len, int k, int rows, unsigned char *g,
                    unsigned char **data, unsigned char **coding) {
    for (int r = 0; r < rows; r++) memset(coding[r], 0, (size_t)len);
}
"""


def test_a_library_that_computes_another_code_is_refused(tmp_path: Path) -> None:
    """The symbols alone prove nothing: the self-test compares with reedsolo's parity."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler here to build a deliberately wrong library")
    source = tmp_path / "wrong.c"
    source.write_text(WRONG)
    lib = tmp_path / "libwrong.so"
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(lib), str(source)], check=True)
    result = load([Candidate(ENV, str(lib))])
    assert result.library is None
    assert result.refused == (
        f"{lib} (RACKCLOUD_EC_ISAL) fails the self-test: its 4+2 parity differs from reedsolo's",
    )


def test_a_bare_soname_is_logged_as_the_file_the_loader_mapped() -> None:
    if CHOICE.library is None or CHOICE.source != "system":
        pytest.skip(f"the system's libisal2 is not what this process chose: {CHOICE.describe()}")
    assert Path(CHOICE.library).is_absolute()
    assert Path(CHOICE.library).name.startswith("libisal.so.2")
    assert isal_lib._resolved("/already/a/path.so") == "/already/a/path.so"
