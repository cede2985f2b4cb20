"""Run a command under a pseudo-terminal and play a script against it, as a person at a
terminal would: wait for text, type lines, press Ctrl-C.

usage: pty_drive.py STEPS -- COMMAND [ARG...]

STEPS is a JSON list of ["expect", text, seconds] | ["send", text] | ["intr"] |
["sleep", seconds] | ["signal", "TERM" | "HUP" | ...] (sent to the command) |
["exit_within", seconds] (the command must have ended by then, else status 98). Everything the command wrote is printed on stdout at the end; the exit
status is the command's, or 99 when an expectation timed out.
"""

import json
import os
import pty
import select
import signal
import sys
import time

steps = json.loads(sys.argv[1])
command = sys.argv[sys.argv.index("--") + 1 :]
pid, fd = pty.fork()
if pid == 0:
    os.execvp(command[0], command)

seen = b""
consumed = 0


def read_some(timeout):
    global seen
    ready, _, _ = select.select([fd], [], [], timeout)
    if ready:
        try:
            data = os.read(fd, 65536)
        except OSError:
            return False
        if not data:
            return False
        seen += data
    return True


status = 0
for step in steps:
    kind = step[0]
    if kind == "expect":
        needle, deadline = step[1].encode(), time.time() + step[2]
        while needle not in seen[consumed:]:
            alive = read_some(0.1)
            if needle in seen[consumed:]:
                break
            if not alive or time.time() > deadline:
                sys.stdout.write(seen.decode(errors="replace"))
                sys.stdout.write("\n[pty_drive: timed out waiting for %r]\n" % step[1])
                os.kill(pid, 9)
                sys.exit(99)
        consumed = seen.index(needle, consumed) + len(needle)
    elif kind == "send":
        os.write(fd, step[1].encode())
    elif kind == "intr":
        os.write(fd, b"\x03")
    elif kind == "signal":
        os.kill(pid, getattr(signal, "SIG" + step[1]))
    elif kind == "exit_within":
        end = time.time() + step[1]
        while time.time() < end:
            done, wait_status = os.waitpid(pid, os.WNOHANG)
            if done:
                while read_some(0.05):
                    pass
                sys.stdout.write(seen.decode(errors="replace"))
                sys.exit(os.waitstatus_to_exitcode(wait_status))
            read_some(0.05)
        sys.stdout.write(seen.decode(errors="replace"))
        sys.stdout.write("\n[pty_drive: still running after %s s]\n" % step[1])
        os.kill(pid, 9)
        sys.exit(98)
    elif kind == "sleep":
        end = time.time() + step[1]
        while time.time() < end:
            read_some(0.05)

deadline = time.time() + 60
while time.time() < deadline:
    if not read_some(0.1):
        break
_, wait_status = os.waitpid(pid, 0)
sys.stdout.write(seen.decode(errors="replace"))
sys.exit(os.waitstatus_to_exitcode(wait_status))
