// bb_tb: simulation top for whole-program runs (not synthesizable: it makes the clock and writes files).
//
// Instantiates bb_core and bb_dram, generates a 10 ns clock (see below), and holds the core in reset while `run` is
// low. Files come from plusargs: +program=FILE (instruction memory, bb_fetch), +dram=FILE (DRAM image,
// bb_dram), +dram_out=FILE (DRAM dump when the run ends), +trace=FILE (one line per retired instruction:
// "index unit dispatch start grant end free", grant = -1 for non-DMA). When the core is done the bench
// dumps DRAM, closes the trace and raises `finished`, so a cocotb test only waits for that edge.
// `reload` (while `run` is low) re-reads the program and DRAM files, zeroes the buffers and restarts the
// trace file, so one simulation can run many programs.
`timescale 1ns/1ps
`include "bitbranch_isa.vh"
module bb_tb #(
    parameter ARRAY_ROWS           = 16,
    parameter ARRAY_COLS           = 16,
    parameter WORD_BITS            = 64,
    parameter BRANCH_PARALLEL      = 2,
    parameter INP_ENTRIES          = 32768,
    parameter WGT_ENTRIES          = 4096,
    parameter ACC_ENTRIES          = 4096,
    parameter OUT_ENTRIES          = 16384,
    parameter CONST_ENTRIES        = 256,
    parameter DRAM_LATENCY         = 32,
    parameter DRAM_BYTES_PER_CYCLE = 64,
    parameter DMA_ROW_OVERHEAD     = 1,
    parameter GEMM_PIPELINE        = 4,
    parameter ALU_PIPELINE         = 3,
    parameter QUEUE_DEPTH          = 16,
    parameter TOKEN_DEPTH          = 8,
    parameter IMEM_AW              = 16,
    parameter DRAM_AW              = 24
) (
    // Only these ports are visible to the cocotb bench (VPI); everything inside stays private to Verilator.
    input  wire        run        /*verilator public_flat_rw*/,
    input  wire        reload     /*verilator public_flat_rw*/,
    input  wire [31:0] insn_count /*verilator public_flat_rw*/,
    input  wire [32:0] dram_size  /*verilator public_flat_rw*/,
    output wire        done       /*verilator public*/,
    output wire [3:0]  status     /*verilator public*/,
    output wire [31:0] err_index  /*verilator public*/,
    output wire [63:0] cycles     /*verilator public*/,
    output reg         finished   /*verilator public*/
);
    localparam B = DRAM_BYTES_PER_CYCLE;
    // DRAM read tag width: the same derivation as bb_core's TAGW default (passed down explicitly)
    localparam FA_INP   = $clog2(INP_ENTRIES) + $clog2(WORD_BITS / 8);
    localparam FA_WGT   = $clog2(WGT_ENTRIES) + $clog2(ARRAY_COLS * WORD_BITS / 8);
    localparam FA_CONST = $clog2(CONST_ENTRIES) + $clog2(ARRAY_COLS * 16);
    localparam FA_LD    = (FA_INP > FA_WGT) ? ((FA_INP > FA_CONST) ? FA_INP : FA_CONST)
                                            : ((FA_WGT > FA_CONST) ? FA_WGT : FA_CONST);
    localparam TAGW     = 2 + FA_LD + B;

    // The clock: rising edges at 5, 15, 25, ... ns (the design uses rising edges only). By default a cycle
    // is one simulator time step: the edge, then the clock drops again in that step's NBA region. The
    // cocotb/VPI main loop costs the same for every time step, so this halves that overhead (~10% of a
    // ResNet-18 run on edge). With +square_clock (the harness passes it when dumping waves, where a clock
    // that never shows high would be unreadable) it is an ordinary 10 ns square wave; results are the same.
    reg clk = 1'b0;
    reg square_clock;
    initial begin
        square_clock = $test$plusargs("square_clock");
        #5;
        forever begin
            clk = 1'b1;
            if (square_clock) begin
                #5 clk = 1'b0;
                #5;
            end else begin
                #10;
            end
        end
    end
    always @(posedge clk) if (!square_clock) clk <= 1'b0;

    reg rst = 1'b1;
    always @(posedge clk) rst <= !run;

    // The run's sizes, sampled while in reset: the core sees registers, not the bench's inputs.
    reg [31:0] insn_count_q;
    reg [32:0] dram_size_q;
    reg        reload_q = 1'b0;
    always @(posedge clk) begin
        reload_q <= reload;
        if (!run) begin
            insn_count_q <= insn_count;
            dram_size_q  <= dram_size;
        end
    end

    wire          ld_req, st_req, ld_gnt, st_gnt, rel, rd_en, rsp_valid, wr_en;
    wire [31:0]   rd_addr, wr_addr;
    wire [B-1:0]  rd_mask, wr_mask;
    wire [8*B-1:0] rsp_data, wr_data;
    wire [2:0]    tr_valid;
    wire [3*32-1:0] tr_index;
    wire [3*64-1:0] tr_disp, tr_start, tr_grant, tr_end;
    wire [63:0]   now;
    wire [TAGW-1:0] rd_tag, rsp_tag;

    bb_core #(
        .ARRAY_ROWS(ARRAY_ROWS), .ARRAY_COLS(ARRAY_COLS), .WORD_BITS(WORD_BITS), .BRANCH_PARALLEL(BRANCH_PARALLEL),
        .INP_ENTRIES(INP_ENTRIES), .WGT_ENTRIES(WGT_ENTRIES), .ACC_ENTRIES(ACC_ENTRIES), .OUT_ENTRIES(OUT_ENTRIES),
        .CONST_ENTRIES(CONST_ENTRIES), .DRAM_LATENCY(DRAM_LATENCY), .DRAM_BYTES_PER_CYCLE(B),
        .DMA_ROW_OVERHEAD(DMA_ROW_OVERHEAD), .GEMM_PIPELINE(GEMM_PIPELINE), .ALU_PIPELINE(ALU_PIPELINE),
        .QUEUE_DEPTH(QUEUE_DEPTH), .TOKEN_DEPTH(TOKEN_DEPTH), .IMEM_AW(IMEM_AW), .TAGW(TAGW)
    ) core (
        .clk(clk), .rst(rst), .clear(reload_q), .imem_we(1'b0), .imem_waddr(32'd0),
        .imem_wdata({`BB_INSN_BITS{1'b0}}), .insn_count(insn_count_q), .dram_size(dram_size_q),
        .ld_req(ld_req), .st_req(st_req), .ld_gnt(ld_gnt), .st_gnt(st_gnt), .dram_rel(rel),
        .rd_en(rd_en), .rd_addr(rd_addr), .rd_mask(rd_mask), .rd_tag(rd_tag),
        .rsp_valid(rsp_valid), .rsp_data(rsp_data), .rsp_tag(rsp_tag),
        .wr_en(wr_en), .wr_addr(wr_addr), .wr_mask(wr_mask), .wr_data(wr_data),
        .done(done), .status(status), .err_index(err_index), .cycles(cycles), .now(now),
        .tr_valid(tr_valid), .tr_index(tr_index), .tr_disp(tr_disp), .tr_start(tr_start),
        .tr_grant(tr_grant), .tr_end(tr_end)
    );

    reg dump;
    bb_dram #(.DRAM_LATENCY(DRAM_LATENCY), .B(B), .AWD(DRAM_AW), .TAGW(TAGW)) dram (
        .clk(clk), .rst(rst), .reload(reload_q), .ld_req(ld_req), .st_req(st_req), .ld_gnt(ld_gnt), .st_gnt(st_gnt),
        .rel(rel),
        .rd_en(rd_en), .rd_addr(rd_addr), .rd_mask(rd_mask), .rd_tag(rd_tag),
        .rsp_valid(rsp_valid), .rsp_data(rsp_data), .rsp_tag(rsp_tag),
        .wr_en(wr_en), .wr_addr(wr_addr), .wr_mask(wr_mask), .wr_data(wr_data),
        .dump(dump), .dump_size(dram_size_q)
    );

    integer tf;
    reg [8*1024-1:0] trace_file;
    reg have_trace;
    initial begin
        tf = 0;
        finished = 1'b0;
        dump = 1'b0;
        have_trace = $value$plusargs("trace=%s", trace_file);
        if (have_trace) tf = $fopen(trace_file, "w");
    end

    integer k;
    reg [63:0] g;
    always @(posedge clk) begin
        if (!rst && tf != 0) begin
            for (k = 0; k < 3; k = k + 1) begin
                if (tr_valid[k]) begin
                    g = tr_grant[k*64 +: 64];
                    if (g == {64{1'b1}})
                        $fwrite(tf, "%0d %0d %0d %0d -1 %0d %0d\n", tr_index[k*32 +: 32], k, tr_disp[k*64 +: 64],
                                tr_start[k*64 +: 64], tr_end[k*64 +: 64], now);
                    else
                        $fwrite(tf, "%0d %0d %0d %0d %0d %0d %0d\n", tr_index[k*32 +: 32], k, tr_disp[k*64 +: 64],
                                tr_start[k*64 +: 64], g, tr_end[k*64 +: 64], now);
                end
            end
            // a run stopped at its cycle limit never closes the file: what retired must be on disk
            if (|tr_valid) $fflush(tf);
        end
        // completion: dump DRAM (bb_dram, this edge), then close the trace and report
        dump <= !rst && done && !dump && !finished;
        if (dump) begin
            if (tf != 0) $fclose(tf);
            tf = 0;
            finished <= 1'b1;
        end
        if (rst) finished <= 1'b0;
        if (reload_q && have_trace) begin
            if (tf != 0) $fclose(tf);
            tf = $fopen(trace_file, "w");
        end
    end
endmodule
