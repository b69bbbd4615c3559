"""`navigator run` as a real operating-system process against the fake Bot API server, so
tests and benchmarks can kill it the hard way (SIGKILL: no cleanup, no last commit) and
start it again on the same database."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from .fakebot import FakeTelegram

ROOT = Path(__file__).resolve().parents[2]


class BotProcess:
    """One bot installation (a data folder and settings); `start` runs a new process."""

    def __init__(self, fake: FakeTelegram, data_dir: Path, env: dict[str, str] | None = None,
                 **settings: object):
        self.fake = fake
        self.data_dir = data_dir
        self.log_path = data_dir / "bot.log"
        base = {k: v for k, v in (env or os.environ).items() if not k.startswith("NAVIGATOR_")}
        if "NAVIGATOR_MODEL_CACHE_DIR" in os.environ:
            base["NAVIGATOR_MODEL_CACHE_DIR"] = os.environ["NAVIGATOR_MODEL_CACHE_DIR"]
        self.env = {**base, "NAVIGATOR_TELEGRAM_TOKEN": fake.token,
                    "NAVIGATOR_TELEGRAM_API_URL": fake.root_url,
                    "NAVIGATOR_DATA_DIR": str(data_dir), "TOKENIZERS_PARALLELISM": "false",
                    **{f"NAVIGATOR_{k.upper()}": str(v) for k, v in settings.items()}}
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.data_dir / 'navigator.db'}"

    async def start(self, timeout: float = 300.0) -> None:
        """Start a process and wait until it polls for updates."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        with self.log_path.open("a") as log:
            log.write(f"\n--- start {self.starts + 1} ---\n")
            log.flush()
            self.process = subprocess.Popen(
                [sys.executable, "-m", "navigator", "run"], cwd=ROOT, env=self.env,
                stdout=log, stderr=subprocess.STDOUT)
        self.starts += 1
        while not self._polling_since(started):
            if self.process.poll() is not None:
                raise RuntimeError(f"the bot exited with {self.process.returncode}:\n"
                                   f"{self.log_tail()}")
            if time.monotonic() - started > timeout:
                self.kill()
                raise TimeoutError(f"the bot did not start polling:\n{self.log_tail()}")
            await asyncio.sleep(0.05)

    def _polling_since(self, started: float) -> bool:
        """Whether a process started after `started` polls. A getUpdates alone does not
        say so: a killed process's last request may still sit in the socket buffer. A
        process's first call is getMe, so: a getUpdates after a getMe after `started`."""
        hello = next((c.timestamp for c in self.fake.calls_to("getMe")
                      if c.timestamp > started), None)
        return hello is not None and any(c.timestamp > hello
                                         for c in self.fake.calls_to("getUpdates"))

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to finish anything."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()

    async def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM, as a service manager stops it; returns the exit code."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.terminate()
        return await asyncio.to_thread(self.process.wait, timeout)

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])
