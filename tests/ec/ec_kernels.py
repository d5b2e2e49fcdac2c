"""Both kernels as pytest parameters: every codec test runs on numpy and on ISA-L.

ISA-L is found the way the agent finds it (``agent.ec.isal_lib.choose``). Where no library
loads (or ``RACKCLOUD_EC_ISAL=none``), its parameter is skipped with the reason, and the
numpy parameter still runs; CI installs ``libisal2`` and pyeclib, so it runs both.
"""

from __future__ import annotations

import pytest

from agent.ec.isal_lib import choose
from agent.ec.kernels import NUMPY, KernelChoice

CHOICE: KernelChoice = choose()

KERNELS = [
    pytest.param(NUMPY, id="numpy"),
    pytest.param(
        CHOICE.kernel if CHOICE.library else None,
        id="isal",
        marks=[]
        if CHOICE.library
        else [pytest.mark.skip(reason=f"no ISA-L here: {CHOICE.describe()}")],
    ),
]
