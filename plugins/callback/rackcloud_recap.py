# rackcloud: a machine-readable recap of an ansible-playbook run.
"""Callback plugin ``rackcloud_recap``: writes a JSON recap to ``$RACKCLOUD_RECAP``.

Enable it in ansible.cfg (``callbacks_enabled = rackcloud_recap``); it writes nothing
unless the environment variable ``RACKCLOUD_RECAP`` names a file.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from typing import Any

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
    name: rackcloud_recap
    type: aggregate
    short_description: write a JSON recap of the run (per host, per task, failures)
    description:
        - At the end of the playbook, writes JSON to the file named by the environment
          variable C(RACKCLOUD_RECAP), atomically (temporary file, then rename).
        - Per host the stats of the play recap; per task, in run order, its wall time,
          how many hosts reported and which hosts it changed; the longest task; and every
          failure (including ignored ones and unreachable hosts) with its message only.
        - Results of C(no_log) tasks are reported with the message C(censored).
        - Without C(RACKCLOUD_RECAP) the plugin does nothing.
    author: rackcloud
    requirements:
        - enable in ansible.cfg with C(callbacks_enabled = rackcloud_recap)
"""

ENV = "RACKCLOUD_RECAP"
STAT_KEYS = ("ok", "changed", "failures", "unreachable", "skipped", "rescued", "ignored")
CENSORED = "censored"


def task_name(task: Any) -> str:
    """The task's own name (no role prefix), else its action."""
    name = task.name or task.action
    return str(name).strip()


def role_name(task: Any) -> str | None:
    role = getattr(task, "_role", None)
    return role.get_name(include_role_fqcn=False) if role is not None else None


def result_msg(result: Any) -> str:
    """The message of a result, and nothing else of it; ``censored`` under no_log."""
    data = result.result
    if data.get("_ansible_no_log") or "censored" in data or result.task.no_log is True:
        return CENSORED
    items = [
        r.get("msg", "")
        for r in data.get("results", ())
        if isinstance(r, dict) and r.get("failed") and not r.get("_ansible_no_log")
    ]
    if items:  # a loop: its own msg only says "One or more items failed"
        return "; ".join(str(m) for m in items)
    msg = data.get("msg", "")
    return msg if isinstance(msg, str) else str(msg)


def write_atomically(path: str, payload: dict[str, Any]) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(payload, out, indent=2, sort_keys=False)
            out.write("\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "rackcloud_recap"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._path = os.environ.get(ENV) or None
        self.disabled = self._path is None
        self._playbook = ""
        self._start = time.monotonic()
        self._tasks: list[dict[str, Any]] = []
        self._open: dict[str, Any] | None = None  # the task running now, with its _uuid
        self._failed: list[dict[str, str]] = []

    # -- task boundaries ---------------------------------------------------------------

    def _close_open(self) -> None:
        if self._open is not None:
            self._open["seconds"] = time.monotonic() - self._open["_started"]
            self._open = None

    def _start_task(self, task: Any) -> None:
        if self._open is not None and self._open["_uuid"] == task._uuid:
            return  # the same task started again for another host (free strategy)
        self._close_open()
        entry = {
            "name": task_name(task),
            "role": role_name(task),
            "seconds": 0.0,
            "_uuid": task._uuid,
            "_started": time.monotonic(),
            "_hosts": set(),
            "changed": [],
        }
        self._tasks.append(entry)
        self._open = entry

    def _entry(self, task: Any) -> dict[str, Any] | None:
        for entry in reversed(self._tasks):
            if entry["_uuid"] == task._uuid:
                return entry
        return None

    def _record(self, result: Any, changed: bool = False) -> dict[str, Any] | None:
        entry = self._entry(result.task)
        if entry is None:
            return None
        host = result.host.get_name()
        entry["_hosts"].add(host)
        if changed and host not in entry["changed"]:
            entry["changed"].append(host)
        return entry

    def _fail(self, result: Any, status: str) -> None:
        self._record(result)
        self._failed.append(
            {
                "host": result.host.get_name(),
                "task": task_name(result.task),
                "msg": result_msg(result),
                "status": status,
            }
        )

    # -- callbacks ---------------------------------------------------------------------

    def v2_playbook_on_start(self, playbook: Any) -> None:
        self._start = time.monotonic()
        self._playbook = str(playbook._file_name)

    def v2_playbook_on_play_start(self, play: Any) -> None:
        self._close_open()

    def v2_playbook_on_task_start(self, task: Any, is_conditional: bool) -> None:
        self._start_task(task)

    def v2_playbook_on_handler_task_start(self, task: Any) -> None:
        self._start_task(task)

    def v2_runner_on_ok(self, result: Any) -> None:
        self._record(result, changed=result.is_changed())

    def v2_runner_on_skipped(self, result: Any) -> None:
        self._record(result)

    def v2_runner_on_failed(self, result: Any, ignore_errors: bool = False) -> None:
        self._fail(result, "ignored" if ignore_errors else "failed")

    def v2_runner_on_unreachable(self, result: Any) -> None:
        self._fail(result, "unreachable")

    def v2_playbook_on_stats(self, stats: Any) -> None:
        self._close_open()
        if self._path is None:
            return
        hosts = {}
        for host in sorted(stats.processed):
            summary = stats.summarize(host)
            hosts[host] = {key: int(summary.get(key, 0)) for key in STAT_KEYS}
        tasks = [
            {
                "name": entry["name"],
                "role": entry["role"],
                "seconds": round(entry["seconds"], 6),
                "hosts": len(entry["_hosts"]),
                "changed": sorted(entry["changed"]),
            }
            for entry in self._tasks
        ]
        longest = max(tasks, key=lambda task: task["seconds"], default=None)
        payload = {
            "playbook": self._playbook,
            "seconds": round(time.monotonic() - self._start, 6),
            "hosts": hosts,
            "tasks": tasks,
            "longest_task": (
                {"name": longest["name"], "seconds": longest["seconds"]} if longest else None
            ),
            "failed": self._failed,
        }
        try:
            write_atomically(self._path, payload)
        except OSError as ex:
            self._display.warning(f"rackcloud_recap: cannot write {self._path}: {ex}")
