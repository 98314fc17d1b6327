// bb_tb: simulation top for whole-program runs (not synthesizable: it makes the clock and writes files).
//
// Instantiates bb_core and bb_dram, generates a 10 ns clock (see below), and holds the core in reset while `run` is
// low. Files come from plusargs: +program=FILE (instruction memory, bb_fetch), +dram=FILE (DRAM image,
// bb_dram), +dram_out=FILE (DRAM dump when the run ends), +trace=FILE (one line per retired instruction:
// "index unit dispatch start grant end free", grant = -1 for non-DMA). When the core is done the bench
// dumps DRAM, closes the trace and raises `finished`, so a cocotb test only waits for that edge.
// `reload` (while `run` is low) re-reads the program and DRAM files, zeroes the buffers and restarts the
// trace file, so one simulation can run many programs.
// Activity (docs/cost.md): `activity` holds the run's action counts in the order of simulator/activity.py
// ACTIONS (18 x 64 bits, action 0 in the low bits): bits read/written at the SRAM bank ports of INP, WGT,
// ACC, OUT, CONST (counters in bb_banks, summed over banks and INP copies), DRAM bits read/written (set
// lanes of the DRAM port masks), the datapaths' bit-ops, accumulates and lane-ops (bb_compute), and
// instruction fetches (dispatches: each reads the next word of the instruction memory into the decode
// register). Each trace line ends with the 17 counts (all but fetches) its unit spent since the unit's
// previous retirement: port A of the banks and DRAM reads belong to the load unit (writes) or the store
// unit (reads and DRAM writes), port B and the datapaths to the compute unit. A trace line is written
// one cycle after the retirement, when the retiring cycle's accesses are in the counters.
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
    output wire [18*64-1:0] activity /*verilator public*/,
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

    // ---- activity --------------------------------------------------------------------------------------
    localparam NA = 17;   // actions of a trace line: simulator/activity.py ACTIONS less `fetches`
    // bank port bits per buffer (0 inp, 1 wgt, 2 acc, 3 out, 4 const): port A read/write, port B read/write
    wire [63:0] a_rd [0:4];
    wire [63:0] a_wr [0:4];
    wire [63:0] b_rd [0:4];
    wire [63:0] b_wr [0:4];
    wire [4*64-1:0] inp_sum [0:ARRAY_ROWS];   // running sums over the INP copies (one per array row)
    assign inp_sum[0] = {4*64{1'b0}};
    genvar gc;
    generate
        for (gc = 0; gc < ARRAY_ROWS; gc = gc + 1) begin : inp_copy
            assign inp_sum[gc+1] = {inp_sum[gc][3*64 +: 64] + core.inp.copy[gc].banks.act_a_rd,
                                    inp_sum[gc][2*64 +: 64] + core.inp.copy[gc].banks.act_a_wr,
                                    inp_sum[gc][1*64 +: 64] + core.inp.copy[gc].banks.act_b_rd,
                                    inp_sum[gc][0*64 +: 64] + core.inp.copy[gc].banks.act_b_wr};
        end
    endgenerate
    assign a_rd[0] = inp_sum[ARRAY_ROWS][3*64 +: 64];
    assign a_wr[0] = inp_sum[ARRAY_ROWS][2*64 +: 64];
    assign b_rd[0] = inp_sum[ARRAY_ROWS][1*64 +: 64];
    assign b_wr[0] = inp_sum[ARRAY_ROWS][0*64 +: 64];
    assign a_rd[1] = core.wgt.copy[0].banks.act_a_rd;
    assign a_wr[1] = core.wgt.copy[0].banks.act_a_wr;
    assign b_rd[1] = core.wgt.copy[0].banks.act_b_rd;
    assign b_wr[1] = core.wgt.copy[0].banks.act_b_wr;
    assign a_rd[2] = core.acc.banks.act_a_rd;
    assign a_wr[2] = core.acc.banks.act_a_wr;
    assign b_rd[2] = core.acc.banks.act_b_rd;
    assign b_wr[2] = core.acc.banks.act_b_wr;
    assign a_rd[3] = core.outb.banks.act_a_rd;
    assign a_wr[3] = core.outb.banks.act_a_wr;
    assign b_rd[3] = core.outb.banks.act_b_rd;
    assign b_wr[3] = core.outb.banks.act_b_wr;
    assign a_rd[4] = core.cst.copy[0].banks.act_a_rd;
    assign a_wr[4] = core.cst.copy[0].banks.act_a_wr;
    assign b_rd[4] = core.cst.copy[0].banks.act_b_rd;
    assign b_wr[4] = core.cst.copy[0].banks.act_b_wr;

    // DRAM bits (set lanes of the port masks) and fetches, counted here; zeroed in reset
    reg [63:0] act_dram_rd, act_dram_wr, act_fetch;
    function [31:0] ones;   // Icarus 11's $countones miscounts now and then (rtl/bb_banks.v)
        input [B-1:0] v;
        integer i;
        begin
`ifdef VERILATOR
            ones = $countones(v);
`else
            ones = 0;
            for (i = 0; i < B; i = i + 1) ones = ones + v[i];
`endif
        end
    endfunction
    always @(posedge clk) begin
        if (rst) begin
            act_dram_rd <= 64'd0;
            act_dram_wr <= 64'd0;
            act_fetch   <= 64'd0;
        end else begin
            if (rd_en) act_dram_rd <= act_dram_rd + 64'd8 * ones(rd_mask);
            if (wr_en) act_dram_wr <= act_dram_wr + 64'd8 * ones(wr_mask);
            if (|core.dispatch && !done) act_fetch <= act_fetch + 64'd1;
        end
    end

    // per-unit vectors of the NA actions (ACTIONS order: inp/wgt/acc/out/const read+write, dram read/write,
    // bitops, accumulates, requant, residual and pool lanes), action 0 in the low bits
    wire [NA*64-1:0] u_load = {320'd0, 64'd0, act_dram_rd, a_wr[4], 64'd0, a_wr[3], 64'd0, a_wr[2], 64'd0,
                               a_wr[1], 64'd0, a_wr[0], 64'd0};
    wire [NA*64-1:0] u_store = {320'd0, act_dram_wr, 64'd0, 64'd0, a_rd[4], 64'd0, a_rd[3], 64'd0, a_rd[2],
                                64'd0, a_rd[1], 64'd0, a_rd[0]};
    wire [NA*64-1:0] u_comp = {core.compute.act_pool, core.compute.act_res, core.compute.act_rq,
                               core.compute.act_accum, core.compute.act_bitops, 128'd0,
                               b_wr[4], b_rd[4], b_wr[3], b_rd[3], b_wr[2], b_rd[2], b_wr[1], b_rd[1],
                               b_wr[0], b_rd[0]};
    genvar ga;
    generate
        for (ga = 0; ga < NA; ga = ga + 1) begin : act_total
            assign activity[ga*64 +: 64] = u_load[ga*64 +: 64] + u_store[ga*64 +: 64] + u_comp[ga*64 +: 64];
        end
    endgenerate
    assign activity[NA*64 +: 64] = act_fetch;

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

    // retirements of the last cycle, written this cycle (their accesses are in the counters now)
    reg  [2:0]      p_valid;
    reg  [3*32-1:0] p_index;
    reg  [3*64-1:0] p_disp, p_start, p_grant, p_end;
    reg  [63:0]     p_now;
    reg  [NA*64-1:0] snap [0:2];   // each unit's vector at its previous retirement
    reg  [NA*64-1:0] uv, dv;
    integer k, a;
    reg [63:0] g;
    always @(posedge clk) begin
        p_valid <= rst ? 3'b000 : tr_valid;
        p_index <= tr_index;
        p_disp  <= tr_disp;
        p_start <= tr_start;
        p_grant <= tr_grant;
        p_end   <= tr_end;
        p_now   <= now;
        if (rst) begin
            snap[0] = {NA*64{1'b0}};
            snap[1] = {NA*64{1'b0}};
            snap[2] = {NA*64{1'b0}};
        end
        if (!rst && tf != 0) begin
            for (k = 0; k < 3; k = k + 1) begin
                if (p_valid[k]) begin
                    uv = (k == 0) ? u_load : (k == 1) ? u_comp : u_store;
                    for (a = 0; a < NA; a = a + 1) dv[a*64 +: 64] = uv[a*64 +: 64] - snap[k][a*64 +: 64];
                    snap[k] = uv;
                    g = p_grant[k*64 +: 64];
                    if (g == {64{1'b1}})
                        $fwrite(tf, "%0d %0d %0d %0d -1 %0d %0d", p_index[k*32 +: 32], k, p_disp[k*64 +: 64],
                                p_start[k*64 +: 64], p_end[k*64 +: 64], p_now);
                    else
                        $fwrite(tf, "%0d %0d %0d %0d %0d %0d %0d", p_index[k*32 +: 32], k, p_disp[k*64 +: 64],
                                p_start[k*64 +: 64], g, p_end[k*64 +: 64], p_now);
                    for (a = 0; a < NA; a = a + 1) $fwrite(tf, " %0d", dv[a*64 +: 64]);
                    $fwrite(tf, "\n");
                end
            end
            // a run stopped at its cycle limit never closes the file: what retired must be on disk
            if (|p_valid) $fflush(tf);
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
