// bb_fetch: instruction memory, decode stage and in-order dispatch (docs/timing.md section 2).
//
// The instruction memory (2^IMEM_AW words of INSN_BITS) is written by a host through `imem_*`; in
// simulation (not SYNTHESIS) it is loaded by $readmemh from the file named by the `+program=FILE` plusarg
// (one instruction per line, 64 hex digits; the bench writes it from program.bin), at time 0 and again on
// `reload` (a bench runs several programs in one simulation).
// The decode register holds instruction `pc`, decoded and checked by bb_decode; it is refilled from
// memory in the cycle it is dispatched, so fetch dispatches at most one instruction per cycle.
// Instruction pc goes to its unit's queue when that queue has room in this cycle (`room`, which
// already counts a slot the unit frees now). An instruction that fails a check stops fetch: `err_status`
// and `err_index` hold the first failure, in program order.
`timescale 1ns/1ps
`include "bitbranch_isa.vh"
`include "bb_status.vh"
module bb_fetch #(
    parameter ARRAY_COLS    = 4,
    parameter WORD_BITS     = 64,
    parameter INP_ENTRIES   = 1024,
    parameter WGT_ENTRIES   = 256,
    parameter ACC_ENTRIES   = 256,
    parameter OUT_ENTRIES   = 512,
    parameter CONST_ENTRIES = 64,
    parameter IMEM_AW       = 16,
    parameter XW            = 32,
    parameter YW            = 64
) (
    input  wire                     clk,
    input  wire                     rst,
    input  wire                     reload,
    input  wire                     imem_we,
    input  wire [31:0]              imem_waddr,
    input  wire [`BB_INSN_BITS-1:0] imem_wdata,
    input  wire [XW-1:0]            insn_count,
    input  wire [32:0]              dram_size,
    input  wire [2:0]               room,
    output wire [2:0]               dispatch,
    output wire [`BB_INSN_BITS-1:0] word,
    output wire [XW-1:0]            index,
    output wire                     all_dispatched,
    output wire                     stalled,     // an instruction is ready but its queue is full
    output reg  [3:0]               err_status,
    output reg  [XW-1:0]            err_index
);
    localparam IW = `BB_INSN_BITS;

    reg [IW-1:0] imem [0:(1 << IMEM_AW) - 1];
    // A host writes the program through imem_* (the chip's instruction SRAM port); the simulation benches
    // load it from a file instead, which only a simulator can do.
    always @(posedge clk) if (imem_we) imem[imem_waddr[IMEM_AW-1:0]] <= imem_wdata;
`ifndef SYNTHESIS
    reg [8*1024-1:0] program_file;
    reg              have_program;
    initial begin
        have_program = $value$plusargs("program=%s", program_file);
        if (have_program) $readmemh(program_file, imem);
    end
    always @(posedge clk) if (reload && have_program) $readmemh(program_file, imem);
`endif

    reg  [XW-1:0] pc;                 // index of the instruction in the decode register
    wire          dvalid = pc < insn_count;
    wire [1:0]    unit_q;
    wire [3:0]    status_q;
    wire          halted = err_status != `BB_ST_OK;
    wire          ok     = dvalid && !halted && status_q == `BB_ST_OK;
    wire          fire   = ok && room[unit_q];

    assign dispatch = {fire && unit_q == 2'd2, fire && unit_q == 2'd1, fire && unit_q == 2'd0};
    assign index = pc;
    assign all_dispatched = !dvalid;
    assign stalled = ok && !room[unit_q];

    wire [XW-1:0] ld_addr = rst ? {XW{1'b0}} : pc + 1'b1;
    wire          ld      = rst || fire;
    wire [IW-1:0] ld_word = imem[ld_addr[IMEM_AW-1:0]];
    wire          ld_last = ld_addr == insn_count - 1'b1;

    bb_decode #(
        .ARRAY_COLS(ARRAY_COLS), .WORD_BITS(WORD_BITS), .INP_ENTRIES(INP_ENTRIES), .WGT_ENTRIES(WGT_ENTRIES),
        .ACC_ENTRIES(ACC_ENTRIES), .OUT_ENTRIES(OUT_ENTRIES), .CONST_ENTRIES(CONST_ENTRIES)
    ) dec (
        .clk(clk), .en(ld), .word(ld_word), .is_last(ld_last), .dram_size(dram_size),
        .unit(), .status(), .word_q(word), .unit_q(unit_q), .status_q(status_q)
    );

    always @(posedge clk) begin
        if (rst) begin
            pc         <= {XW{1'b0}};
            err_status <= (insn_count == {XW{1'b0}}) ? `BB_ST_ILLEGAL : `BB_ST_OK;
            err_index  <= {XW{1'b0}};
        end else begin
            if (fire) pc <= pc + 1'b1;
            if (dvalid && !halted && status_q != `BB_ST_OK) begin
                err_status <= status_q;
                err_index  <= pc;
            end
        end
    end
endmodule
