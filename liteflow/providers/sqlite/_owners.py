"""Who holds a SQLite lock: owner ids that name a process, and telling whether it has exited."""

from __future__ import annotations

import functools
import os
import secrets


@functools.cache
def _pid_space() -> str:
    """Where a process id names one process: this boot of the machine and this PID namespace
    (containers sharing a volume see other pids); ``?`` where that cannot be known."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as file:
            boot = file.read().strip()
        namespace = os.stat("/proc/self/ns/pid")
    except OSError:
        return "?"
    return f"{boot}.{namespace.st_dev}.{namespace.st_ino}"


def owner_id() -> str:
    """A new owner id for a provider of this process: ``<pid space>:<pid>:<random>``."""
    return f"{_pid_space()}:{os.getpid()}:{secrets.token_hex(8)}"


def owner_is_dead(owner: str) -> bool:
    """Whether ``owner`` (another provider's id) belongs to a process known to have exited.

    Only for a process of this machine's current boot and PID namespace, and only when no process
    has its pid: a reused pid, a zombie or another user's process all count as alive, which errs on
    the safe side (its lease then lapses as usual)."""
    space, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if space == "?" or space != _pid_space() or not pid_text.isdigit() or int(pid_text) == os.getpid():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # PermissionError: it exists
    return False
