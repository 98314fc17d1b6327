// bb_automatic.vh: `BB_AUTOMATIC, the function qualifier for pure (non-recursive) functions; `BB_REGS,
// `BB_EVAL_WHEN and `BB_KEEP (below).
// Under Verilator it is `automatic` (Verilog-2001): the function's temporaries are locals, so Verilator
// can keep them in registers and drop a call whose result nobody uses (a static function's variables
// are state, so every call is kept). pyverilog cannot parse the keyword, and for such a function it
// changes nothing, so other tools get a static function.
`ifndef BB_AUTOMATIC_VH
`define BB_AUTOMATIC_VH
`ifdef VERILATOR
`define BB_AUTOMATIC automatic
`else
`define BB_AUTOMATIC
`endif
// `BB_REGS: for a small array that is registers by design (per-unit state, accumulators): Yosys's front
// end turns such arrays into registers (mem2reg) anyway, and `bitbranch synth` reports any mem2reg it was
// not told about, since a buffer turned into registers must not go unnoticed. Only under SYNTHESIS
// (pyverilog cannot parse attributes).
`ifdef SYNTHESIS
`define BB_REGS (* mem2reg *)
`else
`define BB_REGS
`endif
// `BB_EVAL_WHEN(c): a guard for combinational blocks whose results are read only while `c` holds (a bank's
// port A routing, read only when a DMA beat enables the port). Under Verilator it is `if (c)`, so the block
// is evaluated only in the cycles that use it (Verilator evaluates combinational logic at every clock
// edge); elsewhere it is empty, so Yosys and Icarus see the unguarded logic, and no gate is added to the
// hardware. Outside the guard the block assigns its defaults, which no reader looks at.
`ifdef VERILATOR
`define BB_EVAL_WHEN(c) if (c)
`else
`define BB_EVAL_WHEN(c)
`endif
// `BB_KEEP: a net Yosys must keep as it is (bb_pe's popcount tree: each adder its own carry chain, not merged
// with the others into one $macc). Only under SYNTHESIS, like `BB_REGS.
`ifdef SYNTHESIS
`define BB_KEEP (* keep *)
`else
`define BB_KEEP
`endif
`endif
