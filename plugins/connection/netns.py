# rackcloud: run Ansible tasks inside a Linux network namespace on this machine.
"""Connection plugin ``netns``: each command runs under ``ip netns exec NS``.

Lab nodes are network namespaces on the controller's own machine, so the filesystem is
shared: file transfers are plain local copies and remote temporary directories live in
the same filesystem the controller sees.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from ansible.errors import AnsibleConnectionFailure, AnsibleError, AnsibleFileNotFound
from ansible.module_utils.common.text.converters import to_bytes, to_native, to_text
from ansible.plugins.connection import ConnectionBase
from ansible.utils.display import Display

display = Display()

NETNS_DIR = "/run/netns"
IP_FALLBACKS = ("/usr/sbin/ip", "/sbin/ip")

DOCUMENTATION = """
    name: netns
    short_description: run tasks inside a Linux network namespace on the controller
    description:
        - Runs every command of a task with C(ip netns exec NS /bin/sh -c CMD), the way the
          chroot connection runs it in a chroot.
        - The filesystem is shared with the controller (only the network differs), so
          files are transferred with plain local copies.
        - Needs root on the controller and an existing namespace (C(/run/netns/NS)).
    author: rackcloud
    version_added: historical
    options:
        netns_name:
            description:
                - Name of the network namespace, as listed by C(ip netns list).
                - Taken from C(ansible_netns_name), else C(ansible_host), else the
                  inventory host name.
            type: string
            default: inventory_hostname
            vars:
                - name: inventory_hostname
                - name: ansible_host
                - name: ansible_netns_name
        netns_exe:
            description:
                - Path of the iproute2 C(ip) command.
                - When unset, the first of C(ip) on C(PATH), C(/usr/sbin/ip), C(/sbin/ip).
            type: string
            env:
                - name: ANSIBLE_NETNS_EXE
            ini:
                - section: netns_connection
                  key: exe
            vars:
                - name: ansible_netns_exe
    extends_documentation_fragment:
        - connection_pipelining
    notes:
        - The remote user is ignored; commands run as the user running Ansible (root).
        - Become without a password prompt works but is pointless, since tasks already
          run as root.
"""


def find_ip(configured: str | None) -> str | None:
    """The ``ip`` command to use, or None when there is none."""
    if configured:
        found = shutil.which(configured)
        return found if found else None
    found = shutil.which("ip")
    if found:
        return found
    for path in IP_FALLBACKS:
        if os.access(path, os.X_OK):
            return path
    return None


class Connection(ConnectionBase):
    """Local execution inside a network namespace."""

    transport = "netns"
    has_pipelining = True
    has_tty = False
    default_user = "root"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.netns: str | None = None
        self.ip_exe: str | None = None

    def _connect(self):
        if self._connected:
            return self
        netns = self.get_option("netns_name")
        if os.geteuid() != 0:
            raise AnsibleConnectionFailure(
                "The netns connection needs root on the controller (ip netns exec)."
            )
        ip_exe = find_ip(self.get_option("netns_exe"))
        if ip_exe is None:
            configured = self.get_option("netns_exe")
            what = repr(configured) if configured else "'ip' (iproute2)"
            raise AnsibleConnectionFailure(
                f"The netns connection cannot find the command {what} on this machine."
            )
        if not netns or "/" in netns or netns in (".", ".."):
            raise AnsibleConnectionFailure(
                f"The netns connection needs a namespace name, not {netns!r}."
            )
        if not os.path.exists(os.path.join(NETNS_DIR, netns)):
            raise AnsibleConnectionFailure(
                f"Network namespace {netns!r} does not exist (no {NETNS_DIR}/{netns})."
            )
        self.netns = netns
        self.ip_exe = ip_exe
        # Commands run as the controller's user whatever remote_user says, like local.
        self._play_context.remote_user = self.default_user
        display.vvv(f"ESTABLISH NETNS CONNECTION TO {netns}", host=netns)
        self._connected = True
        return self

    def _shell_executable(self) -> str:
        executable = getattr(self._play_context, "executable", None) or "/bin/sh"
        return executable.split()[0]

    def _build_argv(self, cmd: str) -> list[str]:
        assert self.ip_exe is not None
        assert self.netns is not None
        return [self.ip_exe, "netns", "exec", self.netns, self._shell_executable(), "-c", cmd]

    def _become_active(self, sudoable: bool) -> bool:
        return bool(sudoable and self.become and self.become._id)

    def exec_command(self, cmd, in_data=None, sudoable=True):
        """Run ``cmd`` (the shell string Ansible built) in the namespace."""
        super().exec_command(cmd, in_data=in_data, sudoable=sudoable)
        if self._become_active(sudoable) and self.become.expect_prompt():
            raise AnsibleConnectionFailure(
                "The netns connection cannot answer a become password prompt; tasks "
                "already run as root, so use 'become: false' or no become password."
            )
        argv = self._build_argv(to_text(cmd))
        display.vvv(f"EXEC {argv}", host=self.netns)
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
        except OSError as ex:
            raise AnsibleConnectionFailure(
                f"The netns connection could not start {argv[0]!r}: {ex.strerror}."
            ) from ex
        stdout, stderr = proc.communicate(in_data)
        if self._become_active(sudoable):
            stdout = self._strip_become_success(stdout)
        return proc.returncode, stdout, stderr

    def _strip_become_success(self, data: bytes) -> bytes:
        """Drop the become plugin's success marker line (there is no prompt to wait for)."""
        marker = to_bytes(self.become.success) if self.become else b""
        if not marker:
            return data
        index = data.find(marker)
        if index < 0:
            return data
        end = data.find(b"\n", index)
        return b"" if end < 0 else data[end + 1 :]

    def put_file(self, in_path, out_path):
        """Copy a file: the namespace shares the controller's filesystem."""
        super().put_file(in_path, out_path)
        display.vvv(f"PUT {in_path} TO {out_path}", host=self.netns)
        self._copy(in_path, out_path)

    def fetch_file(self, in_path, out_path):
        """Copy a file back: the namespace shares the controller's filesystem."""
        super().fetch_file(in_path, out_path)
        display.vvv(f"FETCH {in_path} TO {out_path}", host=self.netns)
        self._copy(in_path, out_path)

    @staticmethod
    def _copy(in_path: str, out_path: str) -> None:
        b_in = to_bytes(in_path, errors="surrogate_or_strict")
        b_out = to_bytes(out_path, errors="surrogate_or_strict")
        if not os.path.exists(b_in):
            raise AnsibleFileNotFound(f"file or module does not exist: {to_native(in_path)}")
        try:
            shutil.copyfile(b_in, b_out)
        except shutil.SameFileError as ex:
            raise AnsibleError(
                f"failed to copy: {to_native(in_path)} and {to_native(out_path)} are the same"
            ) from ex
        except OSError as ex:
            raise AnsibleError(f"Failed to transfer file to {to_native(out_path)!r}.") from ex

    def reset(self):
        self.close()

    def close(self):
        self._connected = False
