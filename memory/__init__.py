"""HOMEPOT AI: memory."""
