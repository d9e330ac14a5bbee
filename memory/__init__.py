"""HOMEPOT AI: layered memory (DESIGN.md section 6).

1. Working memory is the agent's checkpointer (``agent/``); a thread id is a conversation.
2. ``memory.summary``: rolling summaries past ``HOMEPOT_AI_SUMMARY_TOKEN_BUDGET``
   (``summarize_if_needed``, ``ExtractiveSummarizer`` offline, ``LLMSummarizer`` with a model).
3. ``memory.long_term``: ChromaDB collections conversations, incidents, preferences, knowledge
   (``LongTermMemory.from_settings(settings)``, ``.search(...)``, ``.index_runbooks()``), with the
   offline embeddings of ``memory.embeddings`` and the starter runbooks in ``memory/runbooks``.
4. ``memory.context``: the live fleet snapshot for each turn (``build_fleet_context``).

``memory.memory_tools`` registers the ``memory_search`` tool. Nothing is imported here: chromadb
takes over a second to import, so each caller imports the layer it needs, when it needs it.
"""
