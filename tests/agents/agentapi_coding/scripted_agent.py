#!/usr/bin/python3
"""A scripted terminal coding agent for the coding-agent tests (stdlib only: it runs in the sandbox).

Claude-style input box (a `>` row between two rules), bracketed paste: the terminal of `scripted_terminal.py`. Each
line of a submitted message is one command: `write PATH TEXT`, `fetch URL` (through the proxy variables, as urllib
reads them), `direct URL` (not through them), `run SHELL-COMMAND`, `env NAME`, `ask QUESTION` (a permission menu
answered with `1`/`2`), `sleep S`, `spawn TOKEN` (a detached daemon with TOKEN on its command line), `exit N`,
`say TEXT`; anything else is noted. Replies end with `Done: N commands`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request

# The terminal the scripted agents share: installed next to this script, in tests/support in the source tree.
sys.path.append(os.path.join(os.path.dirname(os.path.realpath(__file__)), os.pardir, os.pardir, "support"))

from scripted_terminal import TerminalAgent, main, out, read_key


class Agent(TerminalAgent):
    def banner(self) -> str:
        return f"Scripted Agent (cwd {os.getcwd()})\n\n"

    def run(self, line: str) -> None:
        word, _, rest = line.partition(" ")
        if word == "write":
            path, _, text = rest.partition(" ")
            try:
                with open(path, "w", encoding="utf-8") as handle:
                    handle.write(text + "\n")
                out(f"Wrote {path}\n")
            except OSError as exc:
                out(f"Error writing {path}: {exc.strerror}\n")
        elif word == "fetch":
            try:
                with urllib.request.urlopen(rest, timeout=10) as response:
                    body = response.read().decode(errors="replace").strip()
                out(f"Fetched {rest}: {response.status} {body[:80]}\n")
            except Exception as exc:
                out(f"Fetch failed {rest}: {exc}\n")
        elif word == "direct":
            # Straight to the address, ignoring the proxy variables (as some CLIs' HTTP clients do).
            try:
                with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(rest, timeout=10) as response:
                    body = response.read().decode(errors="replace").strip()
                out(f"Direct {rest}: {response.status} {body[:80]}\n")
            except Exception as exc:
                out(f"Direct failed {rest}: {exc}\n")
        elif word == "run":
            done = subprocess.run(rest, shell=True, capture_output=True, text=True, check=False)
            out(f"ran ({done.returncode}): {(done.stdout + done.stderr).strip()}\n")
        elif word == "env":
            out(f"{rest}={os.environ.get(rest, '<unset>')}\n")
        elif word == "ask":
            out(f"{rest}\n❯ 1. Yes\n  2. No\n")
            key = read_key()
            out("Permission granted\n" if key == b"1" else "Permission denied\n")
        elif word == "sleep":
            end = time.monotonic() + float(rest)
            frame = 0
            while time.monotonic() < end:
                out(f"\r\x1b[K⠋ Working… ({frame})")
                frame += 1
                time.sleep(0.1)
            out("\r\x1b[K")
        elif word == "spawn":
            subprocess.Popen(
                ["/usr/bin/python3", "-c", "import time; time.sleep(300)", rest],
                start_new_session=True,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            out(f"Spawned {rest}\n")
        elif word == "exit":
            out("Bailing out\n")
            sys.exit(int(rest or 1))
        elif word == "say":
            out(rest + "\n")
        else:
            out(f"Noted: {line}\n")

    def answer(self, message: str) -> None:
        lines = self.echo(message)
        for line in lines:
            self.run(line)
        out(f"Done: {len(lines)} commands\n\n")
        self.draw_prompt()


if __name__ == "__main__":
    main(Agent)
