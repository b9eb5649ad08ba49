"""Local processes the command line watches by pid: the Kafka broker, the streaming job."""

from __future__ import annotations

import os
from pathlib import Path


def alive(pid: int, command_has: tuple[bytes, ...] = ()) -> bool:
    """Whether process `pid` runs: not gone, not a zombie left by a parent that never waited,
    and (when `command_has` is given and its command line is readable) running a command that
    contains one of those words, so a pid reused by another program does not count."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    proc = Path(f"/proc/{pid}")
    try:
        if (proc / "stat").read_text().split()[2] == "Z":
            return False
        command = (proc / "cmdline").read_bytes()
    except OSError:
        return True
    return not command_has or any(word in command for word in command_has)
