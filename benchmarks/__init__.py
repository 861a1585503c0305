"""trainwatch's benchmarks: each figure beside a baseline measured side by side.

Run ``python -m benchmarks`` (full sizes; writes ``benchmarks/RESULTS.md``) or
``python -m benchmarks --smoke`` (tiny sizes, under a minute, for CI: it
prints the figures and asserts nothing). Inputs are generated
(``benchmarks.generate``); nothing big is checked in.
"""
