"""Provider presets: where a provider lives, where its key comes from, how it continues.

Every provider difference that is not about the wire format lives here; the
wire-format differences live in ``core.continuation.strategies``. Output caps and context
windows are defaults for when the provider's model list offers no metadata.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.types import Prices
from core.wire.errors import ConfigError


@dataclass(frozen=True)
class Provider:
    id: str
    label: str
    base_url: str  # "" when the user must supply it
    key_envs: tuple[str, ...] = ()  # variables holding the key, first match wins
    strategy: str = "prefill"
    output_cap: int | None = None  # max tokens one request may ask for
    context_window: int | None = None  # default when the model list says nothing
    default_model: str = ""
    needs_key: bool = True
    model_meta: bool = False  # the /models list carries context length and prices
    is_demo: bool = False
    prices: Prices | None = None
    max_concurrency: int | None = None  # requests in flight the provider allows per model (None: unknown)
    notes: str = ""

    @property
    def key_env(self) -> str | None:
        return self.key_envs[0] if self.key_envs else None

    def key_hint(self) -> str:
        """What to tell a user whose key is missing or rejected."""
        where = " or ".join(self.key_envs) if self.key_envs else "an API key variable"
        if not self.needs_key:  # usually open, so a 401 may also mean the wrong address
            return (
                f"set {where} or paste a key in Settings (or, if this server needs none, check the base URL)"
            )
        return f"set {where} or paste a key in Settings"


_PROVIDERS: tuple[Provider, ...] = (
    Provider(
        id="deepinfra",
        label="DeepInfra",
        base_url="https://api.deepinfra.com/v1/openai",
        key_envs=("DEEPINFRA_API_KEY", "DEEPINFRA_TOKEN"),
        strategy="prefill",
        output_cap=16384,
        default_model="meta-llama/Llama-3.3-70B-Instruct",
        model_meta=True,
        max_concurrency=200,  # DeepInfra's documented limit per model
        notes="Honours an assistant prefill; /models?filter=with_meta gives context length and prices.",
    ),
    Provider(
        id="openai",
        label="OpenAI",
        base_url="https://api.openai.com/v1",
        key_envs=("OPENAI_API_KEY",),
        strategy="instruction",
        output_cap=16384,
        default_model="gpt-4o-mini",
        notes="Closes the assistant turn: a prefill is not continued, so continuation is by instruction.",
    ),
    Provider(
        id="openrouter",
        label="OpenRouter",
        base_url="https://openrouter.ai/api/v1",
        key_envs=("OPENROUTER_API_KEY",),
        strategy="prefill",
        default_model="meta-llama/llama-3.3-70b-instruct",
        model_meta=True,
        notes="Prefill support depends on the upstream provider: probe it.",
    ),
    Provider(
        id="together",
        label="Together AI",
        base_url="https://api.together.xyz/v1",
        key_envs=("TOGETHER_API_KEY",),
        strategy="prefill",
        default_model="meta-llama/Llama-3.3-70B-Instruct-Turbo",
    ),
    Provider(
        id="fireworks",
        label="Fireworks AI",
        base_url="https://api.fireworks.ai/inference/v1",
        key_envs=("FIREWORKS_API_KEY",),
        strategy="prefill",
        default_model="accounts/fireworks/models/llama-v3p3-70b-instruct",
    ),
    Provider(
        id="groq",
        label="Groq",
        base_url="https://api.groq.com/openai/v1",
        key_envs=("GROQ_API_KEY",),
        strategy="prefill",
        output_cap=32768,
        default_model="llama-3.3-70b-versatile",
    ),
    Provider(
        id="mistral",
        label="Mistral",
        base_url="https://api.mistral.ai/v1",
        key_envs=("MISTRAL_API_KEY",),
        strategy="prefix",
        default_model="mistral-large-latest",
        notes='Needs "prefix": true on the assistant message and echoes it back (stripped).',
    ),
    Provider(
        id="deepseek",
        label="DeepSeek",
        base_url="https://api.deepseek.com/beta",
        key_envs=("DEEPSEEK_API_KEY",),
        strategy="prefix",
        output_cap=8192,
        context_window=65536,
        default_model="deepseek-chat",
        notes='Prefix completion needs the beta base URL and "prefix": true.',
    ),
    Provider(
        id="vllm",
        label="vLLM",
        base_url="http://127.0.0.1:8000/v1",
        key_envs=("VLLM_API_KEY",),
        strategy="vllm",
        needs_key=False,
        notes="Sends continue_final_message=true and add_generation_prompt=false.",
    ),
    Provider(
        id="llamacpp",
        label="llama.cpp server",
        base_url="http://127.0.0.1:8080/v1",
        key_envs=("LLAMACPP_API_KEY",),
        strategy="prefill",
        needs_key=False,
    ),
    Provider(
        id="ollama",
        label="Ollama",
        base_url="http://127.0.0.1:11434/v1",
        strategy="prefill",
        needs_key=False,
        notes="Prefill support depends on the model's template: probe it.",
    ),
    Provider(
        id="lmstudio",
        label="LM Studio",
        base_url="http://127.0.0.1:1234/v1",
        strategy="prefill",
        needs_key=False,
    ),
    Provider(
        id="custom",
        label="Custom (OpenAI-compatible)",
        base_url="",
        key_envs=("CONTINUUM_API_KEY",),
        strategy="prefill",
        needs_key=False,
        notes="Any OpenAI-compatible server: set the base URL, and probe continuation in Settings.",
    ),
    Provider(
        id="demo",
        label="Demo model (offline)",
        base_url="",  # started on a loopback port on demand
        strategy="prefill",
        output_cap=4096,
        context_window=8192,
        default_model="demo",
        needs_key=False,
        model_meta=True,
        is_demo=True,
        prices=Prices(input_per_mtok=0.10, output_per_mtok=0.40),
        notes="A built-in placeholder model: no key, no network. Its prices are pretend.",
    ),
)

PROVIDERS: dict[str, Provider] = {p.id: p for p in _PROVIDERS}
DEFAULT_PROVIDER = "deepinfra"


def get_provider(provider_id: str) -> Provider:
    """The preset for ``provider_id``; unknown ids are a usage error with the choices named."""
    try:
        return PROVIDERS[provider_id]
    except KeyError:
        choices = ", ".join(PROVIDERS)
        raise ConfigError(f"Unknown provider {provider_id!r}.", hint=f"choose one of: {choices}") from None
