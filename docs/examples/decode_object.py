"""Recover one object from Rackcloud OSD disks, written from docs/storage-format.md alone.

Usage: python decode_object.py --pool-id N --name NAME DISK_DIR... > out

It imports nothing from Rackcloud: only the standard library, msgspec (as a plain msgpack
decoder), reedsolo and xxhash. It scans the metadata of every disk for the newest version
of the name, finds each chunk's shard files on any of the disks, skips damaged ones (a
warning on stderr), rebuilds missing data shards with reedsolo and writes the object to
stdout, each chunk checked against its checksum before it is written. It exits with 1,
saying why on stderr, when the object is missing, deleted or cannot be rebuilt, or when
a file has a format this tool does not know (it knows format 1 only); if that happens
after some chunks were written, stdout holds only a prefix of the object.
"""

import argparse
import hashlib
import struct
import sys
from functools import cache
from pathlib import Path

import msgspec
import reedsolo
import xxhash

FORMAT = 1
SHARD_PREAMBLE = struct.Struct("<4sHHI")  # magic, format, zero, header length
META_PREAMBLE = struct.Struct("<8sII")  # magic, format, zero
RECORD = struct.Struct("<IQ")  # body length, xxh3-64 of the body
SUM = struct.Struct("<Q")
GF_PRIM = 0x11D  # reedsolo's default primitive polynomial


class Refused(Exception):
    """Something this tool must not guess about: stop with this sentence."""


def warn(message: str) -> None:
    print(f"decode_object: {message}", file=sys.stderr)


def unknown(path: Path, fmt: object) -> Refused:
    return Refused(f"{path} has format {fmt}, which this decoder does not know (it knows 1)")


# ---- metadata ------------------------------------------------------------------------


def records(path: Path) -> list[dict]:
    """The ObjectMeta records of one snapshot or journal, up to the first bad one."""
    data = path.read_bytes()
    if len(data) < META_PREAMBLE.size:
        return []  # a journal torn inside its preamble holds nothing
    magic, fmt, pad = META_PREAMBLE.unpack_from(data)
    if magic != b"RCMETA\0\0" or pad != 0:
        warn(f"{path} is not a metadata file; skipped")
        return []
    if fmt != FORMAT:
        raise unknown(path, fmt)
    out, pos = [], META_PREAMBLE.size
    while pos < len(data):
        start = pos + RECORD.size
        length, want = RECORD.unpack_from(data, pos) if start <= len(data) else (-1, 0)
        body = data[start : start + length]
        try:
            if len(body) != length or xxhash.xxh3_64_intdigest(body) != want:
                raise ValueError
            meta = msgspec.msgpack.decode(body)
        except ValueError:  # msgspec.DecodeError is one too
            warn(f"{path}: the record at byte {pos} is torn or damaged; the rest is ignored")
            break
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise unknown(path, meta.get("format") if isinstance(meta, dict) else "?")
        out.append(meta)
        pos = start + length
    return out


def newest(disks: list[Path], pool: int, name: str) -> dict | None:
    """The record of (pool, name) with the greatest version over every disk."""
    best = None
    for disk in disks:
        meta_dir = disk / "meta"
        files = sorted(meta_dir.glob("snapshot.*")) + sorted(meta_dir.glob("journal.*"))
        for path in files:
            if not path.name.partition(".")[2].isdecimal():
                continue  # an unfinished .tmp write
            for meta in records(path):
                if (meta["pool"], meta["name"]) != (pool, name):
                    continue
                if best is None or tuple(meta["version"]) > tuple(best["version"]):
                    best = meta
    return best


# ---- shard files ---------------------------------------------------------------------


def read_shard(path: Path, want_id: list, meta: dict, ref: list) -> bytes:
    """The shard data of one file after every check; ValueError says what is damaged."""
    data = path.read_bytes()
    if len(data) < SHARD_PREAMBLE.size:
        raise ValueError("it is shorter than its preamble")
    magic, fmt, pad, hlen = SHARD_PREAMBLE.unpack_from(data)
    if magic != b"RCSH":
        raise ValueError(f"it starts with {magic!r}, not b'RCSH'")
    if fmt != FORMAT:
        raise unknown(path, fmt)
    end = SHARD_PREAMBLE.size + hlen
    if pad != 0 or hlen > 1 << 20 or len(data) < end + SUM.size:
        raise ValueError("its preamble is garbled")
    body = data[SHARD_PREAMBLE.size : end]
    if xxhash.xxh3_64_intdigest(body) != SUM.unpack_from(data, end)[0]:
        raise ValueError("its header fails its checksum")
    header = msgspec.msgpack.decode(body)
    if not isinstance(header, dict):
        raise ValueError("its header is not a msgpack map")
    if (header.get("format"), header.get("checksum")) != (FORMAT, "xxh3-64"):
        raise unknown(path, f"{header.get('format')} ({header.get('checksum')} checksums)")
    _, length, shard_len = ref[:3]
    expected = [want_id, meta["k"], meta["m"], meta["plugin"], length, shard_len]
    got = [header.get(key) for key in ("id", "k", "m", "plugin", "chunk_len", "shard_len")]
    if got != expected:
        raise ValueError(f"its header describes another shard: {got}")
    block_size = header.get("block_size")
    if not isinstance(block_size, int) or block_size <= 0:
        raise ValueError(f"its block size {block_size!r} is impossible")
    blocks = -(-shard_len // block_size)
    if len(data) != end + SUM.size * (1 + blocks) + shard_len:
        raise ValueError(f"it is {len(data)} bytes long, which its header does not allow")
    parts, pos = [], end + SUM.size
    for number in range(blocks):
        block = data[pos + SUM.size : pos + SUM.size + block_size]
        if xxhash.xxh3_64_intdigest(block) != SUM.unpack_from(data, pos)[0]:
            raise ValueError(f"block {number} fails its checksum")
        parts.append(block)
        pos += SUM.size + len(block)
    return b"".join(parts)


def find_shards(disks: list[Path], meta: dict, ref: list) -> dict[int, bytes]:
    """Good shards of one chunk, data positions first, stopping at k of them."""
    pool, name, version = meta["pool"], meta["name"], meta["version"]
    index, pg = ref[0], ref[3]
    stem = hashlib.blake2b(f"{pool}\0{name}".encode(), digest_size=16).hexdigest()
    version_hex = f"{version[0]:016x}{version[1]:016x}"
    found: dict[int, bytes] = {}
    for position in range(meta["k"] + meta["m"]):
        if len(found) == meta["k"]:
            break
        rel = Path("shards", f"{pool}.{pg:x}", f"{stem}.{version_hex}.{index}.{position}")
        for disk in disks:
            if not (disk / rel).is_file():
                continue
            want_id = [pool, pg, name, version, index, position]
            try:
                found[position] = read_shard(disk / rel, want_id, meta, ref)
                break
            except (ValueError, OSError) as exc:
                warn(f"shard file {disk / rel} is damaged ({exc}); skipped")
    return found


# ---- the erasure code ----------------------------------------------------------------


@cache
def times(c: int) -> bytes:
    """The table of GF(2^8) products by ``c``, for bytes.translate."""
    return bytes(reedsolo.gf_mult_noLUT(c, x, prim=GF_PRIM) for x in range(256))


def rebuild(shards: dict[int, bytes], k: int, m: int) -> list[bytes]:
    """The k data shards from any k shards (a dict by position).

    Per byte column j this is reedsolo's erasure decoding of the codeword
    shard[0][j] .. shard[k+m-1][j]. The code is linear, so reedsolo decodes the k unit
    columns once, giving the weight of each good shard in each data shard, and the
    weighted sums are taken with byte tables over whole shards.
    """
    good = sorted(shards)[:k]
    erased = [p for p in range(k + m) if p not in good]
    rs = reedsolo.RSCodec(m)
    weights = {}
    for u in good:
        unit = bytearray(k + m)
        unit[u] = 1
        weights[u] = rs.decode(unit, erase_pos=erased, only_erasures=True)[0]
    size = len(shards[good[0]])
    data = []
    for i in range(k):
        if i in shards:
            data.append(shards[i])
            continue
        acc = 0
        for u in good:
            if weights[u][i]:
                acc ^= int.from_bytes(shards[u].translate(times(weights[u][i])), "big")
        data.append(acc.to_bytes(size, "big"))
    if size:  # spot check against plain per-column decoding, as docs/storage-format.md says
        column = bytearray(shards[p][0] if p in good else 0 for p in range(k + m))
        plain = rs.decode(column, erase_pos=erased, only_erasures=True)[0]
        if bytes(plain) != bytes(d[0] for d in data):
            raise Refused("reedsolo's column decoding disagrees with the weights: a bug here")
    return data


def decode_chunk(disks: list[Path], meta: dict, ref: list) -> bytes:
    index, length, _, _, _, _, checksum = ref
    k, m = meta["k"], meta["m"]
    shards = find_shards(disks, meta, ref)
    if len(shards) < k:
        raise Refused(f"chunk {index} has {len(shards)} good shards on these disks, {k} needed")
    if all(p in shards for p in range(k)):
        data = b"".join(shards[p] for p in range(k))[:length]
    else:
        warn(f"chunk {index}: rebuilding data shards from positions {sorted(shards)}")
        data = b"".join(rebuild(shards, k, m))[:length]
    if xxhash.xxh3_64_intdigest(data) != checksum:
        raise Refused(f"chunk {index} does not match its checksum after decoding")
    return data


def recover(disks: list[Path], pool: int, name: str) -> None:
    meta = newest(disks, pool, name)
    if meta is None:
        raise Refused(f"no disk holds metadata of object {name!r} in pool {pool}")
    version = f"{meta['version'][0]:016x}{meta['version'][1]:016x}"
    if meta["deleted"]:
        raise Refused(f"object {name!r} was deleted (version {version})")
    if meta["inline"] is not None:
        if xxhash.xxh3_64_intdigest(meta["inline"]) != meta["checksum"]:
            raise Refused(f"the inline copy of {name!r} fails its checksum")
        sys.stdout.buffer.write(meta["inline"])
        return
    if meta["plugin"] != "rs":
        raise Refused(f"object {name!r} uses the {meta['plugin']!r} code; only 'rs' is known")
    whole, size = xxhash.xxh3_64(), 0
    for ref in meta["chunks"]:
        data = decode_chunk(disks, meta, ref)
        whole.update(data)
        size += len(data)
        sys.stdout.buffer.write(data)
    if (size, whole.intdigest()) != (meta["size"], meta["checksum"]):
        raise Refused(f"the object's {size} bytes do not match its size and checksum")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool-id", type=int, required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("disks", nargs="+", type=Path, metavar="DISK_DIR")
    args = parser.parse_args()
    try:
        recover(args.disks, args.pool_id, args.name)
    except (Refused, OSError) as exc:
        warn(str(exc))
        return 1
    sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
