"""Predictive maintenance: RUL regression (C-MAPSS) and survival models of device failure."""
