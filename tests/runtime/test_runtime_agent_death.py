"""A container dies with its agent: a crashed agent's watchdog cannot fence it any more,
and the monitors will give the container to another node once the lease has run out."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agent.runtime import cleanup_scope
from tests.runtime.test_runtime_cgroups import alive, pids_of, token, wait_until

AGENT = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from agent.runtime import Runtime, RunSpec

    async def main() -> None:
        spec = RunSpec(name="c1", generation=1, argv=("sleep", sys.argv[1]),
                       env={"PATH": "/usr/bin:/bin"}, log_path=Path(sys.argv[2]),
                       scope=sys.argv[3])
        await Runtime().start(spec)
        print("started", flush=True)
        await asyncio.sleep(3600)

    asyncio.run(main())
    """
)


@pytest.mark.skipif(os.geteuid() != 0, reason="namespaces (and the launcher) need root")
def test_killing_the_agent_kills_its_container(tmp_path: Path) -> None:
    mark = token()
    scope = f"test-death-{os.getpid()}"
    agent = subprocess.Popen(
        [sys.executable, "-c", AGENT, mark, str(tmp_path / "c1.log"), scope],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert agent.stdout is not None and agent.stdout.readline().strip() == "started"
        wait_until(lambda: pids_of(mark), "the container ran")
        container = pids_of(mark)
        agent.send_signal(signal.SIGKILL)
        agent.wait(5)
        wait_until(lambda: not any(alive(p) for p in container), "the container died too")
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait(5)
        cleanup_scope(scope)
