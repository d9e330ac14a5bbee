"""The built-in offline model: intents, slots and templates over the fleet's own vocabulary.

``OfflineChatModel.from_store(store, now=...)`` is the entry point; see ``model.py``.
"""

from agent.offline.model import OfflineChatModel

__all__ = ["OfflineChatModel"]
