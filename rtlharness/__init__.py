"""RTL verification harness: builds the Verilog core (rtl/) with cocotb's runner, runs program artifacts on it
and cross-checks outputs and cycle counts against the SimPy simulator (`bitbranch verify`, `bitbranch fuzz`).

Dependencies point one way: this package imports `isa` and `simulator`, never the reverse.
"""
