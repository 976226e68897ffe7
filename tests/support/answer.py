"""Run a command on a terminal and answer its questions: the test support
for `run --confirm`, which asks only on a terminal.

    python answer.py ANSWER[,ANSWER...] -- COMMAND [ARG...]

Each time the command asks ("... [c]ontinue without asking: "), the next
answer is typed. Prints everything the command wrote to the terminal and
exits with its exit code.
"""
import os
import pty
import select
import subprocess
import sys
import time

PROMPT = b"[c]ontinue without asking: "


def main():
    sep = sys.argv.index("--")
    answers = [a for a in sys.argv[1].split(",") if a]
    command = sys.argv[sep + 1:]
    master, slave = pty.openpty()
    child = subprocess.Popen(command, stdin=slave, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    seen = b""
    typed = 0
    deadline = time.monotonic() + 120
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([master], [], [], left)[0]:
            # Stuck (a prompt we do not recognise?): fail, do not hang.
            child.kill()
            seen += b"\nanswer.py: timed out waiting for the command\n"
            break
        try:
            chunk = os.read(master, 4096)
        except OSError:  # the command closed the terminal: it ended
            break
        if not chunk:
            break
        seen += chunk
        if seen.count(PROMPT) > typed:
            # No answer left: end of input (Ctrl-D).
            os.write(master, answers.pop(0).encode() + b"\n" if answers else b"\x04")
            typed += 1
    code = child.wait(timeout=60)
    sys.stdout.write(seen.decode(errors="replace"))
    sys.exit(code)


if __name__ == "__main__":
    main()
