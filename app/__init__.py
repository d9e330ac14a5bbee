"""HOMEPOT AI: app."""
