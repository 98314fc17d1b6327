// bb_automatic.vh: `BB_AUTOMATIC, the function qualifier for pure (non-recursive) functions.
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
// `BB_KEEP: a net Yosys must keep as it is (bb_pe's popcount tree: each adder its own carry chain, not merged
// with the others into one $macc). Only under SYNTHESIS, like `BB_REGS.
`ifdef SYNTHESIS
`define BB_KEEP (* keep *)
`else
`define BB_KEEP
`endif
`endif
