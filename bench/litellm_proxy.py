"""A LiteLLM proxy with mock models, run from its own virtualenv (``.venv-litellm``,
``make litellm-venv``) as a subprocess on a free local port: used by the
integration tests (tests/integrations/) and by bench B8. LiteLLM is heavy, so it
stays out of the project's virtualenv; ``integrations/`` is put first on the
proxy's path, so the callback under test is the working tree's."""

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(os.environ.get("LITELLM_VENV") or ROOT / ".venv-litellm")
MASTER_KEY = "sk-asksage-test-master"
CALLBACK = "asksage_budget.litellm.budget_callback"

# Mock models: no network. The chat mock answers 10 prompt + 20 completion tokens
# (streamed: as counted), the embedding mock 10 prompt tokens.
MODELS = """\
model_list:
  - model_name: mock-chat
    litellm_params:
      model: openai/mock-chat
      api_key: sk-none
      mock_response: "Hello from the mock model."
  - model_name: mock-embed
    litellm_params:
      model: openai/text-embedding-3-small
      api_key: sk-none
      mock_response: [0.1, 0.2]
  - model_name: mock-broken
    litellm_params:
      model: openai/mock-broken
      api_key: sk-none
      mock_response: "litellm.InternalServerError"
router_settings:
  num_retries: 0
general_settings:
  master_key: {master}
"""


def missing() -> str | None:
    """Why the proxy cannot run here, or None."""
    if not (VENV / "bin" / "litellm").exists():
        return f"LiteLLM is not installed in {VENV} (make litellm-venv)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proxy:
    """``litellm --config`` with the mock models, with or without the callback."""

    def __init__(
        self, work: Path, env: dict[str, str], callback: bool = True, workers: int = 1
    ):
        self.work, self.callback, self.workers = work, callback, workers
        self.env = env
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = work / f"litellm-{self.port}.log"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 180) -> "Proxy":
        self.work.mkdir(parents=True, exist_ok=True)
        config = self.work / f"litellm-{self.port}.yaml"
        text = MODELS.format(master=MASTER_KEY)
        if self.callback:
            text += f"litellm_settings:\n  callbacks: {CALLBACK}\n"
        config.write_text(text)
        env = {
            # A clean environment: LiteLLM reads DATABASE_URL and others itself.
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", str(self.work)),
            "LANG": "C.UTF-8",
            "PYTHONPATH": str(ROOT / "integrations"),
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no fetch from the internet
            "LITELLM_LOG": "ERROR",
            **self.env,
        }
        command = [
            str(VENV / "bin" / "litellm"),
            "--config",
            str(config),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--num_workers",
            str(self.workers),
        ]
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(  # noqa: S603 (our own command line)
            command,
            env=env,
            cwd=self.work,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"LiteLLM exited: {self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if (
                    httpx.get(f"{self.url}/health/liveliness", timeout=2).status_code
                    == 200
                ):
                    return self
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(
            f"LiteLLM did not start in {timeout:.0f} s: {self.log_tail()}"
        )

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(
            self.process.pid, signal.SIGTERM
        )  # its own session: uvicorn workers too
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        self._log.close()
