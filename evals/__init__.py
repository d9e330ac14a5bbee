"""HOMEPOT AI: evals."""
