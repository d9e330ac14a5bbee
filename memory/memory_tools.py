"""The ``memory_search`` agent tool: runbooks, incidents, conversations and preferences.

Registered in the one tool registry (group ``memory``) like every other tool. The long-term
memory instance comes from ``ctx.extras["memory"]`` when the agent holds one (it opens ChromaDB
and the embedding model once per process), else it is built from the settings and cached per
data directory. The starter or configured runbooks are indexed on first use; re-indexing skips
files whose content hash is unchanged, so this costs milliseconds after the first time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

from tools.registry import ToolContext, register
from tools.results import ToolResult

if TYPE_CHECKING:
    from memory.long_term import LongTermMemory

Collection = Literal["knowledge", "incidents", "conversations", "preferences"]
ALL_COLLECTIONS = ("conversations", "incidents", "preferences", "knowledge")  # = long_term.COLLECTIONS

_CACHE: dict[tuple[str, str, str], Any] = {}


class MemorySearchArgs(BaseModel):
    query: str = Field(description="What to look for, in plain words, e.g. 'card reader keeps failing'.",
                       min_length=2, max_length=500)
    collections: list[Collection] | None = Field(
        default=None,
        description="Where to search: knowledge (runbooks), incidents (past alerts and their fixes), "
                    "conversations (earlier chats), preferences (the user's). Default: all.")
    k: int = Field(default=4, ge=1, le=10, description="How many snippets to return, best first.")


def memory_for(ctx: ToolContext) -> "LongTermMemory":
    """The agent's memory if it passed one, else one per data directory for this process."""
    held = ctx.extras.get("memory")
    if held is not None and hasattr(held, "search"):
        return held
    # Imported here, not at the top: chromadb takes over a second to import, and registering
    # the tools (every CLI start) must not pay for it unless memory is actually searched.
    from memory.long_term import LongTermMemory

    settings = ctx.settings
    key = (str(settings.data_dir.resolve()), str(settings.get("HOMEPOT_AI_CHROMA_HOST")),
           str(settings.get("HOMEPOT_AI_RUNBOOKS_DIR")))
    if key not in _CACHE:
        memory = LongTermMemory.from_settings(settings)
        memory.ensure_runbooks()
        _CACHE[key] = memory
    return _CACHE[key]


@register(group="memory")
def memory_search(ctx: ToolContext, args: MemorySearchArgs) -> ToolResult:
    """Search the assistant's long-term memory: runbooks (how to diagnose and fix POS and IoT
    problems), past incidents with their resolutions, summaries of earlier conversations and the
    user's stated preferences. Use it for "how do I fix ...", "what should I check when ...",
    "has this happened before?", and after finding an anomaly or alert, to suggest next steps.
    Returns snippets best first, each with its source tag and a relevance score (0-1); snippets
    below the relevance threshold are left out, so an empty result means nothing relevant.
    Examples: "card reader keeps failing at Camden", "freezer temperature alarm what to do".
    """
    memory = memory_for(ctx)
    user = ctx.user if ctx.user and ctx.user != "cli" else None
    snippets = memory.search(args.query, collections=args.collections, k=args.k, user=user)
    searched = ", ".join(args.collections or ALL_COLLECTIONS)
    if not snippets:
        return ToolResult.empty(
            "memory_search",
            f"Nothing in memory ({searched}) is relevant to {args.query!r} "
            f"(relevance threshold {memory.min_score:.2f}).",
            **args.model_dump(exclude_none=True),
        )
    data = [s.as_dict() for s in snippets]
    best = snippets[0]
    return ToolResult(
        tool="memory_search",
        data=data,
        rows=len(data),
        query=f"semantic search over {searched} for {args.query!r}",
        summary=f"{len(data)} snippet{'s' if len(data) != 1 else ''} from memory; best: {best.cite()} "
                f"(score {best.score:.2f}).",
    )
