"""Model providers: Ollama (a local LLM), offline (the built-in deterministic model), auto.

``choose_provider("auto", ...)`` asks Ollama's ``/api/tags`` (stdlib HTTP, half a second at
most, so a machine without Ollama pays nothing) whether the configured model is pulled; if so
it uses ``ChatOllama``, else the offline model, with a one-line notice saying why. In auto mode
the offline model is also kept as the *fallback*: when Ollama fails mid-turn (HTTP 500, timeout,
connection refused) the graph answers that turn offline instead of failing.

``classify_error`` turns the zoo of client exceptions (httpx, ollama.ResponseError, pydantic
validation of a malformed stream, JSON errors) into one ``ProviderError`` with a kind and a
sentence a user can act on. Heavy imports (langchain_ollama, the offline model) are lazy.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

    from tools.config import Settings
    from tools.store.engine import Store

ErrorKind = Literal["unreachable", "timeout", "server_error", "malformed", "not_found"]


class ProviderError(RuntimeError):
    """A model call failed in a way the user should hear about in one sentence."""

    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class UnknownModelSpec(ValueError):
    """``--model`` named something that is not ``offline``, ``ollama[:NAME]`` or ``auto``."""


@dataclass
class ProviderChoice:
    """The model the graph uses, what to call it in answers, and the offline fallback (auto)."""

    name: str  # "ollama" or "offline": the provider that answers
    label: str  # e.g. "ollama:llama3.2" or "offline"
    model: "BaseChatModel"
    fallback: "BaseChatModel | None" = None
    notice: str | None = None
    host: str | None = None


def parse_model_spec(spec: str | None) -> tuple[str, str | None]:
    """``"ollama:qwen2.5"`` -> ``("ollama", "qwen2.5")``; ``"offline"`` -> ``("offline", None)``."""
    raw = (spec or "auto").strip()
    kind, _, name = raw.partition(":")
    kind = kind.lower()
    if kind not in {"auto", "offline", "ollama"} or (kind != "ollama" and name):
        raise UnknownModelSpec(f"Unknown model {raw!r}. Use offline, ollama, ollama:NAME or auto.")
    return kind, (name or None)


def ollama_models(host: str, timeout: float = 0.5) -> list[str] | None:
    """The models an Ollama server has pulled, or None when nothing answers at ``host``."""
    try:
        with urllib.request.urlopen(host.rstrip("/") + "/api/tags", timeout=timeout) as resp:
            payload = json.loads(resp.read() or b"{}")
    except (urllib.error.URLError, OSError, ValueError):
        return None
    return [m.get("name") or m.get("model") or "" for m in payload.get("models", [])]


def model_is_pulled(name: str, pulled: list[str]) -> bool:
    """``llama3.2`` matches ``llama3.2:latest``; ``llama3.2:1b`` needs that exact tag."""
    return any(p == name or (":" not in name and p.split(":")[0] == name) for p in pulled)


def make_ollama(settings: "Settings", model: str | None = None, host: str | None = None) -> "BaseChatModel":
    """ChatOllama with temperature 0 and an explicit ``num_ctx`` (Ollama's default truncates)."""
    from langchain_ollama import ChatOllama

    return ChatOllama(
        model=model or settings.get("HOMEPOT_AI_OLLAMA_MODEL"),
        base_url=host or settings.get("HOMEPOT_AI_OLLAMA_HOST"),
        temperature=0,
        num_ctx=int(settings.get("HOMEPOT_AI_OLLAMA_NUM_CTX")),
        client_kwargs={"timeout": float(settings.get("HOMEPOT_AI_OLLAMA_TIMEOUT"))},
    )


def make_offline(store: "Store", settings: "Settings") -> "BaseChatModel":
    """The built-in deterministic model (agent.offline), bound to the store and the clock."""
    try:
        from agent.offline import OfflineChatModel
    except ImportError as exc:
        raise ProviderError("not_found", "The offline model is not available in this installation "
                                         f"({exc}); use --model ollama.") from exc
    return OfflineChatModel.from_store(store, now=settings.now())


def choose_provider(spec: str | None, store: "Store", settings: "Settings") -> ProviderChoice:
    """Resolve ``--model`` (or HOMEPOT_AI_MODEL) into a ready model, following the auto rules."""
    kind, name = parse_model_spec(spec or settings.get("HOMEPOT_AI_MODEL"))
    host = settings.get("HOMEPOT_AI_OLLAMA_HOST")
    model_name = name or settings.get("HOMEPOT_AI_OLLAMA_MODEL")
    if kind == "offline":
        return ProviderChoice("offline", "offline", make_offline(store, settings))
    if kind == "ollama":
        return ProviderChoice("ollama", f"ollama:{model_name}", make_ollama(settings, model_name, host), host=host)
    pulled = ollama_models(host)
    if pulled is not None and model_is_pulled(model_name, pulled):
        return ProviderChoice("ollama", f"ollama:{model_name}", make_ollama(settings, model_name, host),
                              fallback=make_offline(store, settings), host=host)
    why = (f"Ollama is not reachable at {host}" if pulled is None
           else f"Ollama at {host} has not pulled {model_name} (run `ollama pull {model_name}`)")
    return ProviderChoice("offline", "offline", make_offline(store, settings),
                          notice=f"{why}; answering with the built-in offline model.")


def classify_error(exc: BaseException, *, host: str | None = None) -> ProviderError:
    """One ``ProviderError`` (kind + sentence) for whatever the model client raised."""
    if isinstance(exc, ProviderError):
        return exc
    where = f" at {host}" if host else ""
    name = type(exc).__name__
    text = str(exc)
    status = getattr(exc, "status_code", None)
    try:
        import httpx

        if isinstance(exc, httpx.TimeoutException):
            return ProviderError("timeout", f"The model server{where} did not answer in time ({name}); "
                                            "try again, raise HOMEPOT_AI_OLLAMA_TIMEOUT, or use --model offline.")
        if isinstance(exc, (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError)):
            return ProviderError("unreachable", f"Could not reach the model server{where} ({text or name}); "
                                                "start Ollama (`ollama serve`) or use --model offline.")
    except ImportError:  # pragma: no cover - httpx comes with langchain-ollama
        pass
    if isinstance(exc, (ConnectionError, TimeoutError)):
        kind: ErrorKind = "timeout" if isinstance(exc, TimeoutError) else "unreachable"
        return ProviderError(kind, f"Could not reach the model server{where} ({name}); use --model offline.")
    if status == 404 or "not found" in text.lower() and "model" in text.lower():
        return ProviderError("not_found", f"The model server{where} does not have that model ({text}); "
                                          "pull it with `ollama pull NAME` or use --model offline.")
    if isinstance(status, int) and status >= 500:
        return ProviderError("server_error", f"The model server{where} failed (HTTP {status}: {text[:120]}); "
                                             "try again or use --model offline.")
    if isinstance(exc, ValueError) or "OutputParser" in name:
        return ProviderError("malformed", f"The model sent a reply that could not be read ({name}).")
    return ProviderError("server_error", f"The model call failed ({name}: {text[:160]}).")


__all__ = [
    "ProviderChoice", "ProviderError", "UnknownModelSpec", "parse_model_spec", "ollama_models",
    "model_is_pulled", "make_ollama", "make_offline", "choose_provider", "classify_error",
]
