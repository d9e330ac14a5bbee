"""An optional LLM-as-judge: an Ollama model grades the free-text quality of each answer, 1 to 5.

The scripted metrics (tools, arguments, facts, grounding, safety) say whether an answer is
*right*; they cannot say whether it is *useful* (clear, direct, suggests a next step). A judge
model can, when one is available. It never runs by default, and when Ollama is unreachable or
the judge model is not pulled, the run goes on without it and says so in one line.
"""

from __future__ import annotations

import json
import re
from statistics import mean
from typing import Any

from evals.case_model import Case
from evals.scorecard import CaseResult

JUDGE_PROMPT = """You grade answers of an operations assistant for a fleet of POS terminals and IoT devices.
Score the final answer from 1 (useless or wrong-headed) to 5 (clear, direct, answers exactly what was asked,
suggests a sensible next step). Do not check the numbers; judge clarity, relevance and helpfulness only.
Reply with JSON only: {{"score": <1-5>, "reason": "<one sentence>"}}

Conversation:
{conversation}
"""


class OllamaJudge:
    """Grades each case's final answer with a ChatOllama model (temperature 0)."""

    def __init__(self, model: Any, name: str) -> None:
        self.model = model
        self.name = name

    def grade(self, case: Case, result: CaseResult) -> dict[str, Any]:
        convo = "\n".join(f"User: {t.user}\nAssistant: {t.answer}" for t in result.turns)
        try:
            reply = self.model.invoke(JUDGE_PROMPT.format(conversation=convo))
        except Exception as exc:  # noqa: BLE001 - a judge failure never fails the eval
            return {"score": None, "reason": f"judge failed: {type(exc).__name__}"}
        return parse_verdict(str(reply.content))

    def summary(self, results: list[CaseResult]) -> dict[str, Any]:
        scores = [r.judge["score"] for r in results if r.judge and isinstance(r.judge.get("score"), (int, float))]
        return {"model": self.name, "graded": len(scores), "mean_score": round(mean(scores), 3) if scores else None}


def parse_verdict(text: str) -> dict[str, Any]:
    """``{"score": 1-5, "reason": ...}`` out of a judge reply (JSON, or a bare "score: 4")."""
    m = re.search(r"\{.*\}", text, re.S)
    if m:
        try:
            data = json.loads(m.group(0))
            score = int(data.get("score"))
            if 1 <= score <= 5:
                return {"score": score, "reason": str(data.get("reason", ""))[:300]}
        except (ValueError, TypeError):
            pass
    m = re.search(r"\b(?:score\D{0,5})?([1-5])\b", text)
    return {"score": int(m.group(1)) if m else None, "reason": text.strip()[:300]}


def make_judge(spec: str) -> tuple[OllamaJudge | None, str | None]:
    """A judge for ``ollama[:NAME]``, or (None, a note saying why it is skipped)."""
    from agent.providers import make_ollama, model_is_pulled, ollama_models, parse_model_spec
    from tools.config import load_settings

    kind, name = parse_model_spec(spec)
    if kind != "ollama":
        return None, f"LLM judge skipped: --judge takes ollama or ollama:NAME, not {spec!r}."
    settings = load_settings()
    name = name or settings.get("HOMEPOT_AI_JUDGE_MODEL") or settings.get("HOMEPOT_AI_OLLAMA_MODEL")
    host = settings.get("HOMEPOT_AI_OLLAMA_HOST")
    pulled = ollama_models(host)
    if pulled is None:
        return None, f"LLM judge skipped: Ollama is not reachable at {host}."
    if not model_is_pulled(name, pulled):
        return None, f"LLM judge skipped: Ollama at {host} has not pulled {name} (run `ollama pull {name}`)."
    return OllamaJudge(make_ollama(settings, name, host), f"ollama:{name}"), None


__all__ = ["OllamaJudge", "make_judge", "parse_verdict", "JUDGE_PROMPT"]
