"""Run a command with its stderr on a pseudo-terminal, as a person at a terminal sees it.

Progress bars are drawn only where stderr is a terminal; :func:`run_on_terminal` gives
the command a real one (``pty``), reads everything drawn on it, and keeps stdout on a
pipe, so a test can check both that the bar is drawn and that stdout stays clean.
"""
import os
import pty
import re
import subprocess
import threading

#: ANSI escape sequences (cursor moves, colours) that a terminal interprets.
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def run_on_terminal(args, cwd=None, env=None, timeout=600) -> tuple:
    """``(returncode, stdout, terminal_text)``: ``args`` run with stderr on a pty.

    ``terminal_text`` is everything written to the terminal, ANSI sequences removed.
    """
    master, slave = pty.openpty()
    chunks = []

    def drain():
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:          # EIO: the child closed its side
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    try:
        proc = subprocess.Popen(args, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=slave)
        os.close(slave)
        slave = None
        reader.start()
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
            raise
        reader.join(timeout=10)
    finally:
        if slave is not None:
            os.close(slave)
        os.close(master)
    text = b"".join(chunks).decode("utf-8", "replace")
    return proc.returncode, out.decode("utf-8", "replace"), ANSI.sub("", text)
