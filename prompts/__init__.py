"""HOMEPOT AI: prompts."""
