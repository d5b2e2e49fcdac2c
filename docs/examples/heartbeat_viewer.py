"""A heartbeat viewer in 40 lines, using only pyzmq, msgspec and the standard library.

Usage: python heartbeat_viewer.py CLIENT.toml [COUNT]

It reads a Rackcloud client config (the lab writes DIR/client.toml), authenticates with
the client's enrolled CURVE key, subscribes to every node's ``hb.`` topic and prints one
line per heartbeat. Any enrolled key may watch; an unenrolled one hears nothing.
"""

import sys
import tomllib
from pathlib import Path

import msgspec
import zmq

conf_path = Path(sys.argv[1])
count = int(sys.argv[2]) if len(sys.argv) > 2 else 0
conf = tomllib.loads(conf_path.read_text())
keys = tomllib.loads(Path(conf["keys"]["secret"]).read_text())
allowlist = tomllib.loads(Path(conf["keys"]["allowlist"]).read_text())
public_of = {k["name"]: k["public"] for k in allowlist["keys"]}

sub = zmq.Context().socket(zmq.SUB)
sub.curve_publickey = keys["public"].encode()
sub.curve_secretkey = keys["secret"].encode()
sub.setsockopt(zmq.SUBSCRIBE, b"hb.")
for node in conf["nodes"]:
    sub.curve_serverkey = public_of[node["name"]].encode()  # pin each node's enrolled key
    sub.connect(f"tcp://{node['address']}:{node.get('pub_port', 7101)}")

seen = 0
while not count or seen < count:
    topic, tag, header, *_payload = sub.recv_multipart()
    if tag != b"RC2":
        continue  # a protocol we do not speak
    hb = msgspec.msgpack.decode(header)  # a plain dict; unknown fields are simply extra keys
    print(
        f"{topic.decode():8} seq={hb['seq']:<6} incarnation={hb['incarnation']:x} "
        f"uptime={hb.get('uptime_s', 0):8.1f}s roles={','.join(hb['node'].get('roles', []))}",
        flush=True,
    )
    seen += 1
