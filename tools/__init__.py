"""HOMEPOT AI: tools."""
