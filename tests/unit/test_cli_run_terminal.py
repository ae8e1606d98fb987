"""``tributary run`` on a terminal: the command as a process on a pseudo-terminal.

A person runs it at a terminal against a gateway (a scripted one served over
HTTP on a local port, tests/support/fake_gateway.py): the live view redraws in
place with cursor controls, the workflow's question is asked inline and a
typed choice number answers it, the answer is printed, and the exit status is
the workflow's outcome.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import time

from tests.support.fake_gateway import ANSWER, KEY, QUESTION, FakeGateway, completed_story

TIMEOUT_S = 60.0


class PseudoTerminal:
    """A process on a pseudo-terminal: what it drew, and keys typed into it."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self._master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        self.process = subprocess.Popen(
            argv, stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True
        )
        os.close(slave)
        self.drawn = b""

    def read_until(self, text: bytes, deadline: float) -> bool:
        """Read what it draws until ``text`` shows (True) or it ends or time runs out."""
        while text not in self.drawn and time.monotonic() < deadline:
            ready, _, _ = select.select([self._master], [], [], 0.2)
            if not ready:
                continue
            try:
                chunk = os.read(self._master, 65536)
            except OSError:  # EIO: the process ended and closed the terminal
                return text in self.drawn
            if not chunk:
                break
            self.drawn += chunk
        return text in self.drawn

    def type(self, keys: bytes) -> None:
        os.write(self._master, keys)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)
        os.close(self._master)


def test_run_on_a_terminal_draws_live_asks_inline_and_prints_the_answer() -> None:
    gateway = FakeGateway(story=completed_story(ask=True), delay_s=0.05)
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("NO_COLOR", "TRIBUTARY_URL", "TERM", "COLUMNS", "LINES")
    }
    with gateway.serving() as url:
        env |= {"TRIBUTARY_API_KEY": KEY, "TERM": "xterm-256color"}
        argv = [sys.executable, "-m", "tributary_cli", "run", "Longest river", "--url", url]
        terminal = PseudoTerminal(argv, env)
        try:
            deadline = time.monotonic() + TIMEOUT_S
            assert terminal.read_until(b"\n> ", deadline), terminal.drawn.decode(errors="replace")
            assert f"The workflow asks: {QUESTION}".encode() in terminal.drawn
            terminal.type(b"2\n")  # the second choice: miles
            assert terminal.read_until(b"Answer", deadline), terminal.drawn.decode(errors="replace")
            terminal.read_until(b"\0", deadline)  # to the end of its output
            status = terminal.process.wait(timeout=TIMEOUT_S)
        finally:
            terminal.close()
    drawn = terminal.drawn.decode(errors="replace")
    assert status == 0, drawn
    assert gateway.answers == [{"request_id": "rq_1", "answer": "miles"}]
    assert "\x1b[?25l" in drawn  # the live view hid the cursor to redraw in place
    assert "\x1b[1A" in drawn  # and moved up over its previous drawing
    assert "▶ running" in drawn
    assert "✓ completed" in drawn
    assert "calculator" in drawn
    assert " ".join(ANSWER.split()) in " ".join(drawn.replace("│", " ").split())
