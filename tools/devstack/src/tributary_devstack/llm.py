"""Which OpenAI-compatible endpoint the services talk to (pure)."""

from __future__ import annotations

from dataclasses import dataclass

from tributary_devstack.config import StackConfig

# The bundled server accepts any key; a fixed one keeps the services' client happy.
SCRIPTED_LLM_API_KEY = "scripted-llm-key"
SCRIPTED_LLM_MODULE = "tributary_scripted_llm"


@dataclass(frozen=True, slots=True)
class LlmEndpoint:
    base_url: str
    bundled: bool

    def describe(self) -> str:
        """One line for the console. Never includes the API key."""
        if self.bundled:
            return f"LLM: bundled scripted LLM at {self.base_url} (no external LLM configured)"
        return f"LLM: configured endpoint {self.base_url}"


def resolve_llm(config: StackConfig) -> LlmEndpoint:
    """The configured endpoint, or the bundled scripted server when none is set."""
    if config.llm_base_url:
        return LlmEndpoint(config.llm_base_url, bundled=False)
    return LlmEndpoint(config.scripted_llm_url, bundled=True)


def llm_env(endpoint: LlmEndpoint) -> dict[str, str]:
    """LLM variables for the services, on top of the caller's environment.

    With an external endpoint the caller's variables (including the API key,
    under either ``TRIBUTARY_LLM_API_KEY`` or ``OPENAI_API_KEY``) pass through
    untouched; only the resolved base URL is made explicit. With the bundled
    server its fixed key is set, which also shadows any real ``OPENAI_API_KEY``
    so that key is never sent to the local server.
    """
    if endpoint.bundled:
        return {
            "TRIBUTARY_LLM_BASE_URL": endpoint.base_url,
            "TRIBUTARY_LLM_API_KEY": SCRIPTED_LLM_API_KEY,
        }
    return {"TRIBUTARY_LLM_BASE_URL": endpoint.base_url}


def scripted_llm_command(python: str, port: int) -> list[str]:
    return [python, "-m", SCRIPTED_LLM_MODULE, "--host", "127.0.0.1", "--port", str(port)]


def scripted_llm_health_url(port: int) -> str:
    return f"http://127.0.0.1:{port}/health"
