// Status codes of the core's error/status register (bb_core `status`, with `err_index`).
// Hand-written: these are RTL facts, not ISA facts. rtlharness/status.py reads this file, so the
// numbers live only here. Each non-zero code names the isa.errors class the simulator would raise.
`ifndef BB_STATUS_VH
`define BB_STATUS_VH

`define BB_ST_OK          4'd0  // running or finished without error
`define BB_ST_ILLEGAL     4'd1  // IllegalInstruction: unknown opcode, finish missing or not last
`define BB_ST_RESERVED    4'd2  // IllegalInstruction: reserved bits above the opcode's fields are set
`define BB_ST_FIELD       4'd3  // FieldRangeError: a field (or a cross-field rule) out of its legal range
`define BB_ST_TOKEN       4'd4  // TokenError: a token flag names a neighbour the unit lacks
`define BB_ST_BUF_RANGE   4'd5  // BufferOverrun: an access reaches past an on-chip buffer
`define BB_ST_DRAM_RANGE  4'd6  // DramOverrun: a DMA reaches past the DRAM image or 2^32
`define BB_ST_DEADLOCK    4'd7  // DeadlockError: every unit blocked on tokens or queues (run time)

`endif  // BB_STATUS_VH
