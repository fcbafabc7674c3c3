"""Verilog knowledge: parsing, interfaces, per-output slices, stimulus, simulation and verdicts.

This package imports pyslang and the standard library only: never torch, transformers or trl.
"""
