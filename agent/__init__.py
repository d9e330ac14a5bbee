"""HOMEPOT AI: agent."""
