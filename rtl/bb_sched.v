// bb_sched: the in-order sequencing of the load, compute and store units (docs/timing.md section 3).
//
// Per unit it keeps the state of the instruction it works on (IDLE: none, POP: taken and waiting for
// tokens, EXEC: executing, PUSH: done and pushing tokens) and the four dependency-token queues as
// counters (a token carries no data). Every cycle it evaluates the token step chains (bb_stepnet, iterated
// NIT times for the same-cycle bypasses), takes queue heads, starts instructions and retires them.
// A started LOAD/STORE/BGEMM/REQUANT/POOL goes to its engine (`go`, `go_word`) and runs until the
// engine's `eng_last` cycle; SYNC and FINISH take one cycle. It also records each instruction's
// dispatch/start/grant/end cycles for the per-instruction trace (`tr_*`, one record per retirement).
`timescale 1ns/1ps
`include "bitbranch_isa.vh"
`include "bb_automatic.vh"
module bb_sched #(
    parameter TOKEN_DEPTH = 4,
    parameter IW  = 256,   // instruction bits
    parameter XW  = 32,    // instruction index bits
    parameter YW  = 64,    // cycle counter bits
    parameter NIT = 3      // evaluations of bb_stepnet per cycle (3 reach the fixed point, see bb_stepnet)
) (
    input  wire            clk,
    input  wire            rst,
    input  wire [YW-1:0]   now,
    // instruction queues
    input  wire [2:0]      head_valid,
    input  wire [3*IW-1:0] head_word,
    input  wire [3*XW-1:0] head_index,
    input  wire [3*YW-1:0] head_disp,
    output wire [2:0]      take,
    // engines
    output wire [2:0]      go,
    output wire [3*IW-1:0] go_word,
    input  wire [2:0]      eng_last,
    input  wire [2:0]      grant,
    // status
    output wire [2:0]      idle,
    output wire [2:0]      busy,       // executing (engine running or waiting for the DRAM port)
    output wire            progress,   // any step, take, start or retirement this cycle
    output wire [XW-1:0]   blocked_index, // lowest index among instructions blocked on tokens
    output wire            any_blocked,
    output reg  [YW-1:0]   last_end,   // max end cycle so far (total cycles once drained)
    // trace
    output wire [2:0]      tr_valid,
    output wire [3*XW-1:0] tr_index,
    output wire [3*YW-1:0] tr_disp,
    output wire [3*YW-1:0] tr_start,
    output wire [3*YW-1:0] tr_grant,
    output wire [3*YW-1:0] tr_end
);
    localparam ST_IDLE = 2'd0, ST_POP = 2'd1, ST_EXEC = 2'd2, ST_PUSH = 2'd3;
    localparam TW = $clog2(TOKEN_DEPTH + 1);

    `BB_REGS reg [1:0]    st    [0:2];
    `BB_REGS reg [3:0]    flags [0:2];
    `BB_REGS reg          ppd_r [0:2];
    `BB_REGS reg          spd_r [0:2];
    `BB_REGS reg [IW-1:0] word  [0:2];
    `BB_REGS reg [XW-1:0] idx   [0:2];
    `BB_REGS reg [YW-1:0] t_disp  [0:2];
    `BB_REGS reg [YW-1:0] t_start [0:2];
    `BB_REGS reg [YW-1:0] t_grant [0:2];
    `BB_REGS reg [YW-1:0] t_end   [0:2];
    `BB_REGS reg [TW-1:0] tokens  [0:3];

    wire [5:0]  st_v    = {st[2], st[1], st[0]};
    wire [11:0] flags_v = {flags[2], flags[1], flags[0]};
    wire [2:0]  ppd_v   = {ppd_r[2], ppd_r[1], ppd_r[0]};
    wire [2:0]  spd_v   = {spd_r[2], spd_r[1], spd_r[0]};
    wire [11:0] hflags  = {head_word[2*IW+7:2*IW+4], head_word[IW+7:IW+4], head_word[7:4]};
    wire [3:0]  nonempty, notfull;

    genvar q, it, u;
    generate
        for (q = 0; q < 4; q = q + 1) begin : g_tok
            assign nonempty[q] = tokens[q] != {TW{1'b0}};
            assign notfull[q]  = tokens[q] < TOKEN_DEPTH;
        end
    endgenerate

    // Iterated step net: evaluation `it` sees the pushes and pops of evaluation it-1.
    wire [4*(NIT+1)-1:0] xpush, xpop;
    wire [3*NIT-1:0] n_retire, n_take, n_start, n_ppf, n_spf;
    assign xpush[3:0] = 4'b0;
    assign xpop[3:0]  = 4'b0;
    generate
        for (it = 0; it < NIT; it = it + 1) begin : g_iter
            bb_stepnet net (
                .st(st_v), .cur_flags(flags_v), .ppd(ppd_v), .spd(spd_v),
                .head_valid(head_valid), .head_flags(hflags), .nonempty(nonempty), .notfull(notfull),
                .push_in(xpush[4*it +: 4]), .pop_in(xpop[4*it +: 4]),
                .push_out(xpush[4*(it+1) +: 4]), .pop_out(xpop[4*(it+1) +: 4]),
                .retire(n_retire[3*it +: 3]), .take(n_take[3*it +: 3]), .start(n_start[3*it +: 3]),
                .pop_prev_fire(n_ppf[3*it +: 3]), .push_prev_fire(n_spf[3*it +: 3])
            );
        end
    endgenerate

    wire [3:0] push_f = xpush[4*NIT +: 4];
    wire [3:0] pop_f  = xpop[4*NIT +: 4];
    wire [2:0] retire = n_retire[3*(NIT-1) +: 3];
    wire [2:0] start  = n_start[3*(NIT-1) +: 3];
    wire [2:0] ppf    = n_ppf[3*(NIT-1) +: 3];
    wire [2:0] spf    = n_spf[3*(NIT-1) +: 3];
    assign take = n_take[3*(NIT-1) +: 3];

    assign progress = (|push_f) | (|pop_f) | (|retire) | (|take) | (|start);

    // Instruction each unit starts this cycle: the queue head when taken now, else the held one.
    wire [2:0] single;
    generate
        for (u = 0; u < 3; u = u + 1) begin : g_unit
            wire [IW-1:0] w = take[u] ? head_word[u*IW +: IW] : word[u];
            assign go_word[u*IW +: IW] = w;
            assign single[u] = (w[`BB_OPCODE_LSB +: `BB_OPCODE_W] == `BB_OP_SYNC) || (w[`BB_OPCODE_LSB +: `BB_OPCODE_W] == `BB_OP_FINISH);
            assign go[u]     = start[u] & ~single[u];
            assign idle[u]   = (st[u] == ST_IDLE);
            assign busy[u]   = (st[u] == ST_EXEC);
            assign tr_valid[u] = retire[u];
            assign tr_index[u*XW +: XW] = idx[u];
            assign tr_disp[u*YW +: YW]  = t_disp[u];
            assign tr_start[u*YW +: YW] = t_start[u];
            assign tr_grant[u*YW +: YW] = t_grant[u];
            assign tr_end[u*YW +: YW]   = t_end[u];
        end
    endgenerate

    // Lowest instruction index waiting on a token (for the run-time deadlock report).
    wire [2:0] waiting = {st[2] == ST_POP || st[2] == ST_PUSH,
                          st[1] == ST_POP || st[1] == ST_PUSH,
                          st[0] == ST_POP || st[0] == ST_PUSH};
    wire [XW-1:0] m01 = (waiting[0] && (!waiting[1] || idx[0] < idx[1])) ? idx[0] : idx[1];
    wire          w01 = waiting[0] | waiting[1];
    assign blocked_index = (w01 && (!waiting[2] || m01 < idx[2])) ? m01 : idx[2];
    assign any_blocked = |waiting;

    integer k;
    always @(posedge clk) begin
        if (rst) begin
            for (k = 0; k < 3; k = k + 1) begin
                st[k]    <= ST_IDLE;
                flags[k] <= 4'b0;
                ppd_r[k] <= 1'b0;
                spd_r[k] <= 1'b0;
                idx[k]   <= {XW{1'b0}};
            end
            for (k = 0; k < 4; k = k + 1) tokens[k] <= {TW{1'b0}};
            last_end <= {YW{1'b0}};
        end else begin
            for (k = 0; k < 4; k = k + 1)
                tokens[k] <= tokens[k] + {{(TW-1){1'b0}}, push_f[k]} - {{(TW-1){1'b0}}, pop_f[k]};
            for (k = 0; k < 3; k = k + 1) begin
                if (take[k]) begin
                    word[k]   <= head_word[k*IW +: IW];
                    flags[k]  <= head_word[k*IW+4 +: 4];
                    idx[k]    <= head_index[k*XW +: XW];
                    t_disp[k] <= head_disp[k*YW +: YW];
                    t_grant[k] <= {YW{1'b1}};
                end
                if (start[k]) begin
                    st[k]      <= single[k] ? ST_PUSH : ST_EXEC;
                    t_start[k] <= now;
                    spd_r[k]   <= 1'b0;
                    if (single[k]) begin
                        t_end[k] <= now + 1'b1;
                        if (now + 1'b1 > last_end) last_end <= now + 1'b1;
                    end
                end else if (take[k]) begin
                    st[k]    <= ST_POP;
                    ppd_r[k] <= ppf[k];
                end else if (retire[k]) begin
                    st[k] <= ST_IDLE;
                end else begin
                    if (ppf[k]) ppd_r[k] <= 1'b1;
                    if (spf[k]) spd_r[k] <= 1'b1;
                    if (st[k] == ST_EXEC && eng_last[k]) begin
                        st[k]    <= ST_PUSH;
                        t_end[k] <= now + 1'b1;
                        if (now + 1'b1 > last_end) last_end <= now + 1'b1;
                    end
                end
                if (grant[k]) t_grant[k] <= now;
            end
        end
    end
endmodule
