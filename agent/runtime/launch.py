"""The container launcher, run by the agent as ``python -I -S launch.py CONFIG``.

Why a separate process: a process must join its cgroups before it forks, or its children
escape the cgroup's kill, and the new pid namespace needs a fork after ``unshare``; doing
either in the agent would mean forking a threaded asyncio process. The launcher imports
only the standard library and ``linux.py`` beside it (itself stdlib only), never
``agent``, so a container starts in tens of milliseconds.

CONFIG is one JSON object: ``argv``, ``env``, ``cgroups`` (the ``cgroup.procs`` files to
join, v2 first) and ``hostname``. The launcher

1. writes its own pid to every ``cgroup.procs`` (before anything forks),
2. unshares the pid, mount, UTS and IPC namespaces (the network one is the node's),
3. forks: the child is pid 1 of the new pid namespace; it makes ``/`` private
   recursively, mounts a fresh ``/proc``, sets the host name and execs ``argv``,
4. forwards SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 to the child, waits
   for it and exits with its status; when the child was killed by a signal the launcher
   kills itself with the same signal, so the agent sees the same status (negative:
   the signal) as for a process it started directly.

File descriptor 3 reports to the agent: the launcher writes ``pid N`` (the child, in
the launcher's pid namespace), the child writes ``error SENTENCE`` when it cannot run
the command; end of file means the command was exec'ed. The child dies with the launcher
(``PR_SET_PDEATHSIG``), and with it the whole pid namespace, so killing the launcher's
pid (the lab's "power pull") takes the container down.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from agent.runtime import linux
else:  # run as a script: the package is not importable, and must not be (start cost)
    sys.path.append(os.path.dirname(os.path.abspath(__file__)))
    import linux

REPORT_FD = 3
FORWARDED = (
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
)
EXIT_SETUP_FAILED = 126
EXIT_EXEC_FAILED = 127


def _report(line: str) -> None:
    with contextlib.suppress(OSError):  # the agent is gone; the exit status still tells
        os.write(REPORT_FD, (line + "\n").encode(errors="replace"))


def _fail(sentence: str) -> None:
    """Say why in the container's log and to the agent."""
    sys.stderr.write(f"rackcloud launcher: {sentence}\n")
    sys.stderr.flush()
    _report(f"error {sentence}")


def _reason(err: OSError) -> str:
    text = os.strerror(err.errno) if err.errno else str(err)
    return text[:1].lower() + text[1:]


def _exec_failure(argv0: str, env: dict[str, str], err: OSError) -> str:
    if isinstance(err, FileNotFoundError):
        if "/" in argv0:
            return f"command {argv0!r} was not found"
        return f"command {argv0!r} was not found on its PATH ({env.get('PATH', os.defpath)})"
    return f"command {argv0!r} cannot be run: {_reason(err)}"


def _child(config: dict[str, Any], alive_r: int, alive_w: int) -> None:
    """Pid 1 of the new namespace: set it up and exec the command; never returns."""
    argv = [str(a) for a in config["argv"]]
    env = {str(k): str(v) for k, v in config["env"].items()}
    step = "set up the container"
    try:
        os.close(alive_w)
        linux.set_parent_death_signal(signal.SIGKILL)
        if select.select([alive_r], [], [], 0)[0]:  # end of file: the launcher died already
            os._exit(EXIT_SETUP_FAILED)
        os.close(alive_r)
        step = "make the mounts private"
        linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)
        step = "mount /proc"
        flags = linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC
        linux.mount("proc", "/proc", "proc", flags)
        hostname = config.get("hostname")
        if isinstance(hostname, str):
            step = f"set the host name {hostname!r}"
            linux.sethostname(hostname)
        for signum in (signal.SIGPIPE, signal.SIGXFSZ):  # Python ignores them; exec keeps that
            signal.signal(signum, signal.SIG_DFL)
    except OSError as err:
        _fail(f"cannot {step}: {_reason(err)}")
        os._exit(EXIT_SETUP_FAILED)
    try:
        os.execvpe(argv[0], argv, env)  # noqa: S606 -- the argv the caller gave, no shell
    except OSError as err:
        _fail(_exec_failure(argv[0], env, err))
    os._exit(EXIT_EXEC_FAILED)


def _exit_like(status: int) -> int:
    """Exit as the child did: the same code, or killed by the same signal."""
    if os.WIFEXITED(status):
        return os.WEXITSTATUS(status)
    signum = os.WTERMSIG(status)
    import resource  # noqa: PLC0415 -- only on this path: no core file of the launcher

    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if signum != signal.SIGKILL:  # which has no handler to reset
        signal.signal(signum, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signum})
    os.kill(os.getpid(), signum)
    return 128 + signum  # a signal whose default is not to terminate: exit like a shell


def main(args: list[str]) -> int:
    with contextlib.suppress(OSError):  # not open when run by hand, with no agent listening
        os.set_inheritable(REPORT_FD, False)  # closed by the child's exec: end of file = started
    config = json.loads(args[0])
    # die with the agent: a container must not outlive the watchdog that fences it
    linux.set_parent_death_signal(signal.SIGKILL)
    if config.get("parent") and os.getppid() != config["parent"]:
        return EXIT_SETUP_FAILED  # the agent died before the line above took effect
    for procs in config["cgroups"]:
        try:
            with open(procs, "w") as f:
                f.write(str(os.getpid()))
        except OSError as err:
            _fail(f"cannot join the cgroup {os.path.dirname(procs)}: {_reason(err)}")
            return EXIT_SETUP_FAILED
    try:
        linux.unshare(
            linux.CLONE_NEWPID | linux.CLONE_NEWNS | linux.CLONE_NEWUTS | linux.CLONE_NEWIPC
        )
    except OSError as err:
        _fail(f"cannot create the namespaces: {_reason(err)}")
        return EXIT_SETUP_FAILED
    alive_r, alive_w = os.pipe()
    child = os.fork()
    if child == 0:
        _child(config, alive_r, alive_w)
    os.close(alive_r)

    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signum)

    for signum in FORWARDED:
        signal.signal(signum, forward)
    _report(f"pid {child}")
    with contextlib.suppress(OSError):
        os.close(REPORT_FD)
    _, status = os.waitpid(child, 0)
    return _exit_like(status)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
