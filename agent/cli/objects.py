"""``rack pool ls`` and the object commands: put, get, ls, stat, rm (DESIGN §11).

Progress bars go to stderr and only on a terminal; ``--json`` output is documented in
docs/objects.md and stays stable. A get to a file writes ``FILE.part`` and renames it only
once every chunk was read and checked; a failed get to stdout writes nothing there for
objects of up to 64 MiB (read whole first) and says how much it wrote for larger ones.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from agent.cli.render import console, human_bytes
from agent.client import Client
from agent.clustermap import ClusterMap
from agent.data.chunks import Bytes
from agent.data.link import DataLink
from agent.data.objects import ObjectClient
from agent.ec import isal_lib
from agent.errors import RackError
from agent.names import check_name, split_object_path
from agent.objects.format import ObjectMeta
from agent.objects.layout import write_quorum

T = TypeVar("T")
err = Console(stderr=True, highlight=False)
PROGRESS_MIN_BYTES = 8 * 1024 * 1024
MAP_CATCH_UP_S = 1.0
STDOUT_BUFFER = 64 * 1024 * 1024
"""Objects up to this size are read whole before a byte goes to stdout."""
"""Smaller transfers finish before a bar would be worth drawing."""


def _warn(message: str) -> None:
    err.print(f"rack: warning: {message}", style="yellow", markup=False, soft_wrap=True)


def _session(
    client_of: Callable[[], Client],
    work: Callable[[ObjectClient, ClusterMap], Awaitable[T]],
    pool: str | None = None,
) -> T:
    with client_of() as client:
        cmap = client.map_with_pool(pool, MAP_CATCH_UP_S)
        keypair = client.me

    isal_lib.install(quiet=True)  # the codec's fastest kernel; stderr is the operator's

    async def run() -> T:
        link = DataLink(keypair)
        try:
            return await work(ObjectClient(link, lambda: cmap, on_damage=_warn), cmap)
        finally:
            link.close()

    return asyncio.run(run())


@contextmanager
def _progress(what: str, total: int | None) -> Iterator[Callable[[int], None]]:
    if not err.is_terminal or (total is not None and total < PROGRESS_MIN_BYTES):
        yield lambda _n: None
        return
    bar = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(binary_units=True),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    )
    with bar:
        task = bar.add_task(what, total=total)
        yield lambda n: bar.advance(task, n)


# ---- pools ---------------------------------------------------------------------------


def pool_rows(cmap: ClusterMap) -> list[dict[str, Any]]:
    """``rack pool ls --json``: one object per pool (docs/objects.md)."""
    return [
        {
            "name": p.name,
            "id": p.id,
            "k": p.k,
            "m": p.m,
            "plugin": p.plugin,
            "pg_num": p.pg_num,
            "failure_domain": p.failure_domain,
            "min_size": write_quorum(p.k, p.m),
        }
        for p in sorted(cmap.pools.values(), key=lambda p: p.name)
    ]


def cmd_pool_ls(args: argparse.Namespace, client_of: Callable[[], Client]) -> int:
    with client_of() as client:
        rows = pool_rows(client.cluster_map())
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no pools yet: rack pool create NAME --k K --m M")
        return 0
    table = Table(box=None, header_style="bold")
    for col in ("pool", "code", "plugin", "PGs", "failure domain", "min_size"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r["name"],
            f"{r['k']}+{r['m']}",
            r["plugin"],
            str(r["pg_num"]),
            r["failure_domain"],
            str(r["min_size"]),
        )
    console().print(table)
    return 0


# ---- objects -------------------------------------------------------------------------


def cmd_put(args: argparse.Namespace, client_of: Callable[[], Client]) -> int:
    pool, name = split_object_path(args.object)
    src: BinaryIO
    if args.file == "-":
        src, total = sys.stdin.buffer, None
    else:
        try:
            src = open(args.file, "rb")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise RackError(f"cannot read {args.file}: {exc.strerror}") from None
        total = os.fstat(src.fileno()).st_size
    try:
        with _progress(f"put {pool}/{name}", total) as progress:
            stored = _session(client_of, lambda oc, _m: oc.put(pool, name, src, progress), pool)
    finally:
        if src is not sys.stdin.buffer:
            src.close()
    pending = f"; {stored.missing_shards} shards pending recovery" if stored.missing_shards else ""
    layout = "inline" if stored.inline else f"{stored.chunks} chunks"
    print(
        f"stored {pool}/{name}: {stored.size} bytes, version {stored.version.hex()} "
        f"({layout}{pending})"
    )
    return 0


def cmd_get(args: argparse.Namespace, client_of: Callable[[], Client]) -> int:
    pool, name = split_object_path(args.object)
    to_stdout = args.file in (None, "-")
    target = None if to_stdout else Path(args.file)

    async def work(oc: ObjectClient, _cmap: ClusterMap) -> ObjectMeta:
        meta = await oc.head(pool, name)
        if to_stdout:
            await _to_stdout(oc, pool, name, meta)
            return meta
        assert target is not None
        part = target.with_name(target.name + ".part")
        try:
            with open(part, "wb") as f, _progress(f"get {pool}/{name}", meta.size) as progress:
                await oc.get(pool, name, f.write, progress, meta=meta)
                f.flush()
                os.fsync(f.fileno())
            os.replace(part, target)
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        return meta

    try:
        _session(client_of, work, pool)
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise RackError(f"cannot write {args.file or 'stdout'}: {exc.strerror}") from None
    return 0


async def _to_stdout(oc: ObjectClient, pool: str, name: str, meta: ObjectMeta) -> None:
    """An object of up to ``STDOUT_BUFFER`` bytes is read whole before any of it is
    written, so a failed read leaves stdout empty; a larger one streams, and a failure
    part way says how much was written."""
    out = sys.stdout.buffer
    with _progress(f"get {pool}/{name}", meta.size) as progress:
        if meta.size <= STDOUT_BUFFER:
            whole = bytearray()
            await oc.get(pool, name, whole.extend, progress, meta=meta)
            out.write(whole)
            out.flush()
            return
        written = 0

        def emit(data: Bytes) -> None:
            nonlocal written
            out.write(data)
            written += len(data)

        try:
            await oc.get(pool, name, emit, progress, meta=meta)
        except RackError as exc:
            raise RackError(
                f"{exc} (after {written} of {meta.size} bytes went to stdout: discard them)"
            ) from None
        out.flush()


def stat_json(pool: str, meta: ObjectMeta) -> dict[str, Any]:
    """``rack stat --json`` (docs/objects.md)."""
    return {
        "pool": pool,
        "name": meta.name,
        "size": meta.size,
        "version": meta.version.hex(),
        "written_at": datetime.fromtimestamp(meta.written_at, UTC).isoformat(),
        "inline": meta.inline is not None,
        "code": {"k": meta.k, "m": meta.m, "plugin": meta.plugin},
        "chunk_size": meta.chunk_size,
        "chunks": len(meta.chunks),
        "missing_shards": [
            {"chunk": c.index, "position": p, "osd": c.osds[p]}
            for c in meta.chunks
            for p in c.missing
        ],
        "checksum": f"xxh3-64:{meta.checksum:016x}",
    }


def cmd_stat(args: argparse.Namespace, client_of: Callable[[], Client]) -> int:
    pool, name = split_object_path(args.object)
    meta = _session(client_of, lambda oc, _m: oc.head(pool, name), pool)
    data = stat_json(pool, meta)
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    layout = (
        "inline" if data["inline"] else f"{data['chunks']} chunks of {human_bytes(meta.chunk_size)}"
    )
    print(f"{pool}/{name}: {meta.size} bytes ({human_bytes(meta.size)}), {layout}")
    print(f"  version {data['version']}, written {data['written_at']}")
    print(f"  code {meta.k}+{meta.m} ({meta.plugin}), checksum {data['checksum']}")
    if data["missing_shards"]:
        print(f"  {len(data['missing_shards'])} shards pending recovery")
    return 0


def cmd_ls(args: argparse.Namespace, client_of: Callable[[], Client]) -> int:
    pool = check_name(args.pool, "pool name")
    entries = _session(client_of, lambda oc, _m: oc.ls(pool, args.prefix), pool)
    rows: list[dict[str, Any]] = [
        {
            "name": e.name,
            "size": e.size,
            "version": e.version.hex(),
            "written_at": datetime.fromtimestamp(e.written_at, UTC).isoformat(),
        }
        for e in entries
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        print(f"{r['size']:>14}  {r['written_at'][:19]}  {r['name']}")
    return 0


def cmd_rm(args: argparse.Namespace, client_of: Callable[[], Client]) -> int:
    pool, name = split_object_path(args.object)
    version = _session(client_of, lambda oc, _m: oc.rm(pool, name), pool)
    print(f"removed {pool}/{name} (deletion version {version.hex()})")
    return 0


def add_commands(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    pool: argparse._SubParsersAction[argparse.ArgumentParser],
    bind: Callable[
        [Callable[[argparse.Namespace, Callable[[], Client]], int]],
        Callable[[argparse.Namespace], int],
    ],
) -> None:
    """Register the commands on the parser of ``rack`` (``bind`` supplies the client)."""

    def cmd(
        parent: argparse._SubParsersAction[argparse.ArgumentParser], name: str, fn: Any, help_: str
    ) -> argparse.ArgumentParser:
        sp = parent.add_parser(name, help=help_, description=help_)
        sp.set_defaults(fn=bind(fn))
        return sp

    pl = cmd(pool, "ls", cmd_pool_ls, "list the pools")
    pl.add_argument("--json", action="store_true")
    p = cmd(sub, "put", cmd_put, "store a file (or stdin) as an object")
    p.add_argument("object", metavar="POOL/NAME")
    p.add_argument("file", metavar="FILE|-")
    g = cmd(sub, "get", cmd_get, "read an object into a file (or stdout)")
    g.add_argument("object", metavar="POOL/NAME")
    g.add_argument("file", metavar="FILE|-", nargs="?")
    ls = cmd(sub, "ls", cmd_ls, "list the objects of a pool")
    ls.add_argument("pool", metavar="POOL")
    ls.add_argument("--prefix", default="", help="only names that start with this")
    ls.add_argument("--json", action="store_true")
    st = cmd(sub, "stat", cmd_stat, "show an object's size, version and layout")
    st.add_argument("object", metavar="POOL/NAME")
    st.add_argument("--json", action="store_true")
    rm = cmd(sub, "rm", cmd_rm, "remove an object")
    rm.add_argument("object", metavar="POOL/NAME")
