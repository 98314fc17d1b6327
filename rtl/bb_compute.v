// bb_compute: the compute unit's execution engine for BGEMM, REQUANT and POOL (SYNC and FINISH take one
// cycle in bb_sched and never reach it).
//
// An instruction runs as: the `go` cycle s (latch it, set up the first issue), one issue cycle per array
// pass (s+1 .. s+N), then drain cycles, so it lasts exactly the closed form of simulator/timing.py:
//   BGEMM   GEMM_PIPELINE + ceil(oh*ow/R) * ctiles * kh * kw * cw * ceil(kbits*mbits/P)
//           one issue = R output pixels x one (ctile, ky, kx, channel word, group of P branch pairs);
//   REQUANT ALU_PIPELINE + ceil(n/R)                      one issue = R pixels;
//   POOL    ALU_PIPELINE + ceil(oh*ow/R) * kh * kw         one issue = R pixels x one window position.
// The banked buffers (docs/timing.md 4.1) add gap cycles: an accumulating one-step BGEMM over >= 3 column
// tiles issues every other cycle (ACC write-back one cycle later, in the gap), and OUT results are written
// in c_nw write groups per pass (c_nw - 1 gap cycles after a pass's last issue) -- simulator/timing.py.
// Pipeline of an issue at cycle c: the buffer read ports, whose addresses were computed at the end of
// c-1, capture the operands at the end of c; the datapath (bb_pe_array, bb_requant, bb_pool) registers
// its result at the end of c+1; the result is written to ACC/OUT at the end of c+2. So the last write
// lands at the end of cycle s+N+2 <= the instruction's end cycle (both pipelines >= 2), and every reader
// (the next compute instruction, a STORE) samples buffers no earlier than the end of the cycle after it.
// All address generation happens in the clocked process (the next issue's loop state is computed with
// blocking temporaries), so nothing wide is evaluated in cycles where the unit is idle. Pixel coordinates
// advance with a chain of R incrementers per pass (no division per pixel). The loops that run in every
// issue cycle are fully unrolled for Verilator (constant slice positions instead of run-time shifts).
`timescale 1ns/1ps
`include "bitbranch_isa.vh"
// Instruction fields are zero-extended into the 32-bit loop counters and addresses on purpose.
/* verilator lint_off WIDTHEXPAND */
module bb_compute #(
    parameter R             = 2,
    parameter C             = 4,
    parameter W             = 64,
    parameter P             = 1,
    parameter GEMM_PIPELINE = 3,
    parameter ALU_PIPELINE  = 2,
    parameter AW_INP        = 10,
    parameter AW_WGT        = 8,
    parameter AW_ACC        = 8,
    parameter AW_OUT        = 9,
    parameter AW_CONST      = 6
) (
    input  wire                      clk,
    input  wire                      rst,
    input  wire                      go,
    input  wire [`BB_INSN_BITS-1:0]  go_word,
    output wire                      last,
    // INP reads: row r reads the window of 8 entries from inp_raddr[r] (bb_winbuf); a BGEMM's branch pairs
    // pick their planes out of it (offset of pair q from the first pair's plane), POOL/REQUANT take planes 0..7
    output reg  [R-1:0]              inp_ren,
    output reg  [R*AW_INP-1:0]       inp_raddr,
    output reg  [3:0]                inp_rlen,    // window entries read: P for BGEMM, 8 for POOL/REQUANT
    input  wire [R*8*W-1:0]          inp_win,
    // WGT reads: the window of 8 entries from wgt_raddr (planes j < mbits of one weight word)
    output reg                       wgt_ren,
    output reg  [AW_WGT-1:0]         wgt_raddr,
    output reg  [3:0]                wgt_rlen,    // mbits
    input  wire [8*C*W-1:0]          wgt_win,
    // CONST read
    output reg                       const_ren,
    output reg  [AW_CONST-1:0]       const_raddr,
    input  wire [C*8*`BB_CONST_BYTES_PER_LANE-1:0] const_rdata,   // one CONST entry (bitbranch_isa.vh BB_CONST_*)
    // ACC: rows r < R read entries acc_raddr + r and write entries acc_waddr + r (bb_accbuf)
    output reg  [R-1:0]              acc_ren,
    output reg  [AW_ACC-1:0]         acc_raddr,
    input  wire [R*C*32-1:0]         acc_rdata,
    output reg  [R-1:0]              acc_wen,
    output reg  [AW_ACC-1:0]         acc_waddr,
    output wire [1:0]                acc_wsrc,    // data: 0 pe_sum, 1 rq_acc, 2 pl_acc
    // OUT writes: row r writes planes q < out_wn at out_wbase[r] + q, masked to one C-lane slice (bb_outbuf)
    output reg  [R-1:0]              out_wen,
    output reg  [R*AW_OUT-1:0]       out_wbase,
    output reg  [3:0]                out_wn,
    output wire                      out_wsrc,    // data: 0 rq_out, 1 pl_out
    output reg  [W-1:0]              out_wmask,
    // the datapaths' result registers, written to ACC/OUT by the buffers' write ports
    output wire [R*C*32-1:0]         pe_sum,
    output wire [R*C*32-1:0]         rq_acc,
    output wire [R*C*32-1:0]         pl_acc,
    output wire [R*8*C-1:0]          rq_out,      // levels in plane order: bit (r*8 + i)*C + l
    output wire [R*8*C-1:0]          pl_out
);
    localparam OP_NONE = 2'd0, OP_GEMM = 2'd1, OP_RQ = 2'd2, OP_POOL = 2'd3;
    localparam PH_IDLE = 2'd0, PH_ISSUE = 2'd1, PH_DRAIN = 2'd2;
    localparam IW = `BB_INSN_BITS;
    localparam [3:0] P_RLEN = (P < 8) ? P : 8;   // INP planes a BGEMM group reads (offsets 0 .. P-1 from i0)

    reg [1:0]    op, ph;
    reg [31:0]   dcnt;
    assign last = (ph == PH_DRAIN) && (dcnt == 32'd1);

    // ---- per-instruction constants: c_* latched at go; k_* the same values for this cycle's set-up
    // (from go_word in the go cycle, else c_*). POOL runs the BGEMM loop nest with cw = ctiles = 1 and one
    // branch group; `wy`/`wx` are the INP steps of a window row/column (dil*irow, dil*ipix).
    reg [3:0]  c_k, c_m, c_rk, c_kout, c_slice, k_k, k_m, k_rk;
    reg        c_wmode, c_accum, c_res, c_dest, c_mode, k_wmode, k_accum, k_res;
    reg [5:0]  c_shift;
    reg [7:0]  c_lo, c_hi;
    reg [31:0] c_kh, c_kw, c_cw, c_ct, c_bg, c_wy, c_wx, c_wgt, c_acc, c_npix, c_passes, c_ow, c_inp, c_rinp, c_out;
    reg [31:0] c_pixstep, c_rowstep, c_ostep, c_rstep;
    reg [31:0] k_kh, k_kw, k_cw, k_ct, k_bg, k_wy, k_wx, k_wgt, k_acc, k_npix, k_passes, k_ow, k_inp, k_rinp, k_out;
    reg [31:0] k_pixstep, k_rowstep, k_ostep, k_rstep;
    reg [R*32-1:0] c_roff, c_ooff, k_roff, k_ooff;

    // ---- loop state of the current issue -----------------------------------------------------------
    reg [31:0] pass, p0, t, ky, kx, c, g, woff_row, woff_col, woff, wb, accb, rbase0, obase0, nx, nrb, nb;
    reg [3:0]  i0, j0;
    reg [R*32-1:0] base;
    reg [R-1:0] rv;
    // descriptor of the current issue (computed with its addresses)
    reg        d_first, d_fin, d_last;
    reg [P*4-1:0] d_shift;
    reg [P-1:0] d_bvalid;

    // ---- stage 1 (the cycle after an issue): datapath controls -------------------------------------
    reg        s1_gemm, s1_rq, s1_pool, s1_first, s1_fin, s1_init;
    reg [P*4-1:0] s1_shift;
    reg [P-1:0] s1_bvalid;
    reg [R-1:0] s1_rv;
    reg [31:0] s1_abase, s1_obase;
    // stage 2 data source for ACC/OUT writes: 1 array, 2 requant, 3 pool
    reg [1:0]  wb_src;
    // bank-conflict rules of docs/timing.md 4.1: `bub` counts the gap cycles after an issue (no issue, no
    // reads); c_stall: one-step accumulating BGEMM over >= 3 column tiles (one gap cycle per issue, ACC
    // write-back one cycle later through `pend`); c_nw write groups of c_g rows per pass for OUT results
    // (c_nw - 1 gap cycles after a pass's last issue), walked by wg_*
    reg [31:0] bub, c_nw, c_g, wg_lo, wg_left, pend_base;
    reg        c_stall, c_outw, pend;
    reg [R-1:0] pend_rv, wg_rv;

    // ---- operand selection: the read windows' entries each branch pair uses ------------------------------
    // inp_off/wgt_off (pair q's plane offset in its INP/WGT window) are set with the read addresses and
    // delayed one cycle to line up with the data the read returns.
    reg [P*3-1:0] inp_off, wgt_off, d_inp_off, d_wgt_off;
    wire [R*P*W-1:0] inp_rdata;
    wire [P*C*W-1:0] wgt_rdata;
    genvar gr, gq;
    generate
        for (gq = 0; gq < P; gq = gq + 1) begin : pair
            assign wgt_rdata[gq*C*W +: C*W] = wgt_win[d_wgt_off[gq*3 +: 3]*C*W +: C*W];
            for (gr = 0; gr < R; gr = gr + 1) begin : row
                assign inp_rdata[(gr*P+gq)*W +: W] = inp_win[(gr*8 + d_inp_off[gq*3 +: 3])*W +: W];
            end
        end
    endgenerate
    always @(posedge clk) begin
        d_inp_off <= inp_off;
        d_wgt_off <= wgt_off;
    end

    // ---- datapaths ------------------------------------------------------------------------------------
    bb_pe_array #(.R(R), .C(C), .W(W), .P(P), .NPR(P)) pe (
        .clk(clk), .en(s1_gemm), .first(s1_first), .use_init(s1_init), .init(acc_rdata), .a(inp_rdata),
        .w(wgt_rdata), .shift(s1_shift), .bvalid(s1_bvalid), .sum(pe_sum)
    );
    // POOL and REQUANT read planes 0..7 of a pixel: exactly its INP window
    bb_requant #(.R(R), .C(C), .W(W)) rq (
        .clk(clk), .en(s1_rq), .acc(acc_rdata), .mul(const_rdata[8*C*`BB_CONST_MUL_OFF +: 8*C*`BB_CONST_MUL_BYTES]),
        .rmul(const_rdata[8*C*`BB_CONST_RMUL_OFF +: 8*C*`BB_CONST_RMUL_BYTES]),
        .bias(const_rdata[8*C*`BB_CONST_BIAS_OFF +: 8*C*`BB_CONST_BIAS_BYTES]), .res(c_res), .rk(c_rk), .res_words(inp_win),
        .slice(c_slice),
        .shift(c_shift), .lo(c_lo), .hi(c_hi), .out_bits(rq_out), .acc_out(rq_acc)
    );
    bb_pool #(.R(R), .C(C), .W(W)) pl (
        .clk(clk), .en(s1_pool), .first(s1_first), .fin(s1_fin), .mode(c_mode), .k(c_k), .slice(c_slice),
        .words(inp_win), .out_bits(pl_out), .acc_out(pl_acc)
    );
    assign acc_wsrc = wb_src - 2'd1;
    assign out_wsrc = wb_src == 2'd3;

    // ---- fields of the instruction arriving with `go` -----------------------------------------------------
    wire [IW-1:0] gw = go_word;
    wire [`BB_OPCODE_W-1:0] n_op = gw[`BB_OPCODE_LSB +: `BB_OPCODE_W];
    wire        n_gemm = n_op == `BB_OP_BGEMM;
    wire        n_rq   = n_op == `BB_OP_REQUANT;
    wire        n_pool = n_op == `BB_OP_POOL;

    // ---- the sequencer -------------------------------------------------------------------------------------
    // blocking temporaries: the next issue's loop state and the chain of pixel rows
    reg [31:0] tp_pass, tp_p0, tp_t, tp_ky, tp_kx, tp_c, tp_g, tp_woff_row, tp_woff_col, tp_woff, tp_wb, tp_accb;
    reg [31:0] tp_rbase0, tp_obase0, tp_nx, tp_nrb, tp_nb, cx, crb, cb, ab, k_os, k_g, k_nw;
    reg [3:0]  tp_i0, tp_j0, ti, tj;
    reg [R*32-1:0] tp_base;
    reg [R-1:0] tp_rv;
    reg        nxt, chain;
    reg [1:0]  k_op;
    integer    r, q;

    always @(posedge clk) begin
        if (rst) begin
            op <= OP_NONE;
            ph <= PH_IDLE;
            inp_ren <= {R{1'b0}};
            wgt_ren <= 1'b0;
            acc_ren <= {R{1'b0}};
            const_ren <= 1'b0;
            bub <= 32'd0;
            pend <= 1'b0;
            wg_left <= 32'd0;
            s1_gemm <= 1'b0;
            s1_rq <= 1'b0;
            s1_pool <= 1'b0;
            acc_wen <= {R{1'b0}};
            out_wen <= {R{1'b0}};
        end else begin
            // ---- stage 2: write-back of the issue two cycles ago (results registered by the datapath).
            // ACC: all rows at once, R consecutive entries; in the stall mode of docs/timing.md 4.1 one cycle
            // later (`pend`), so that it falls between two issues' ACC reads.
            acc_wen <= {R{1'b0}};
            out_wen <= {R{1'b0}};
            pend <= 1'b0;
            if (pend) begin
                acc_wen <= pend_rv;
                acc_waddr <= pend_base[AW_ACC-1:0];
            end
            if ((s1_gemm && s1_fin) || (s1_rq && c_dest == `BB_DEST_ACC) || (s1_pool && s1_fin && c_mode)) begin
                wb_src <= s1_gemm ? 2'd1 : s1_rq ? 2'd2 : 2'd3;
                if (c_stall) begin
                    pend <= 1'b1;
                    pend_rv <= s1_rv;
                    pend_base <= s1_abase;
                end else begin
                    acc_wen <= s1_rv;
                    acc_waddr <= s1_abase[AW_ACC-1:0];
                end
            end
            // OUT: the pass's rows in c_nw write groups of c_g rows, one group per cycle (bb_outbuf banks)
            if ((s1_rq && c_dest == `BB_DEST_OUT) || (s1_pool && s1_fin && !c_mode)) begin
                wb_src <= s1_rq ? 2'd2 : 2'd3;
                out_wn <= s1_rq ? c_kout : c_k;
                for (r = 0; r < R; r = r + 1) begin
                    out_wen[r] <= s1_rv[r] && r < c_g;
                    ab = s1_obase + c_ooff[r*32 +: 32];
                    out_wbase[r*AW_OUT +: AW_OUT] <= ab[AW_OUT-1:0];
                end
                wg_rv <= s1_rv;
                wg_lo <= c_g;
                wg_left <= c_nw - 1;
            end else if (wg_left != 0) begin
                for (r = 0; r < R; r = r + 1) out_wen[r] <= wg_rv[r] && r >= wg_lo && r < wg_lo + c_g;
                wg_lo <= wg_lo + c_g;
                wg_left <= wg_left - 1;
            end

            // ---- stage 1: the datapath works on the operands read by the current issue (not in a gap)
            s1_gemm   <= ph == PH_ISSUE && bub == 0 && op == OP_GEMM;
            s1_rq     <= ph == PH_ISSUE && bub == 0 && op == OP_RQ;
            s1_pool   <= ph == PH_ISSUE && bub == 0 && op == OP_POOL;
            s1_first  <= d_first;
            s1_fin    <= d_fin;
            s1_init   <= c_accum && d_first;
            s1_shift  <= d_shift;
            s1_bvalid <= d_bvalid;
            s1_rv     <= rv;
            s1_abase  <= (op == OP_GEMM) ? accb : c_acc + p0;
            s1_obase  <= obase0;

            // ---- the issue sequence
            nxt = 1'b0;
            chain = 1'b0;
            k_op = op;
            k_k = c_k; k_m = c_m; k_rk = c_rk; k_wmode = c_wmode; k_accum = c_accum; k_res = c_res;
            k_kh = c_kh; k_kw = c_kw; k_cw = c_cw; k_ct = c_ct; k_bg = c_bg; k_wy = c_wy; k_wx = c_wx;
            k_wgt = c_wgt; k_acc = c_acc; k_npix = c_npix; k_passes = c_passes; k_ow = c_ow; k_inp = c_inp;
            k_rinp = c_rinp; k_out = c_out; k_pixstep = c_pixstep; k_rowstep = c_rowstep; k_ostep = c_ostep;
            k_rstep = c_rstep; k_roff = c_roff; k_ooff = c_ooff;
            if (ph == PH_IDLE && go && (n_gemm || n_rq || n_pool)) begin
                k_op = n_gemm ? OP_GEMM : n_pool ? OP_POOL : OP_RQ;
                k_m = gw[`BB_BGEMM_MBITS_MSB:`BB_BGEMM_MBITS_LSB];
                k_wmode = gw[`BB_BGEMM_WMODE_LSB];
                k_accum = n_gemm && gw[`BB_BGEMM_ACCUMULATE_LSB];
                k_res = gw[`BB_REQUANT_RES_LSB];
                k_rk = gw[`BB_REQUANT_RK_MSB:`BB_REQUANT_RK_LSB];
                k_rinp = gw[`BB_REQUANT_RINP_MSB:`BB_REQUANT_RINP_LSB];
                k_wgt = gw[`BB_BGEMM_WGT_MSB:`BB_BGEMM_WGT_LSB];
                k_cw = 1; k_ct = 1; k_bg = 1;
                if (n_gemm) begin
                    k_k  = gw[`BB_BGEMM_KBITS_MSB:`BB_BGEMM_KBITS_LSB];
                    k_kh = gw[`BB_BGEMM_KH_MSB:`BB_BGEMM_KH_LSB];
                    k_kw = gw[`BB_BGEMM_KW_MSB:`BB_BGEMM_KW_LSB];
                    k_cw = gw[`BB_BGEMM_CW_MSB:`BB_BGEMM_CW_LSB];
                    k_ct = gw[`BB_BGEMM_CTILES_MSB:`BB_BGEMM_CTILES_LSB];
                    k_bg = (k_k * k_m + P - 1) / P;
                    k_wy = gw[`BB_BGEMM_DIL_MSB:`BB_BGEMM_DIL_LSB] * gw[`BB_BGEMM_IROW_MSB:`BB_BGEMM_IROW_LSB];
                    k_wx = gw[`BB_BGEMM_DIL_MSB:`BB_BGEMM_DIL_LSB] * gw[`BB_BGEMM_IPIX_MSB:`BB_BGEMM_IPIX_LSB];
                    k_acc = gw[`BB_BGEMM_ACC_MSB:`BB_BGEMM_ACC_LSB];
                    k_inp = gw[`BB_BGEMM_INP_MSB:`BB_BGEMM_INP_LSB];
                    k_ow = gw[`BB_BGEMM_OW_MSB:`BB_BGEMM_OW_LSB];
                    k_npix = gw[`BB_BGEMM_OH_MSB:`BB_BGEMM_OH_LSB] * k_ow;
                    k_pixstep = gw[`BB_BGEMM_STRIDE_MSB:`BB_BGEMM_STRIDE_LSB] * gw[`BB_BGEMM_IPIX_MSB:`BB_BGEMM_IPIX_LSB];
                    k_rowstep = gw[`BB_BGEMM_STRIDE_MSB:`BB_BGEMM_STRIDE_LSB] * gw[`BB_BGEMM_IROW_MSB:`BB_BGEMM_IROW_LSB];
                end else if (n_pool) begin
                    k_k  = gw[`BB_POOL_K_MSB:`BB_POOL_K_LSB];
                    k_kh = gw[`BB_POOL_KH_MSB:`BB_POOL_KH_LSB];
                    k_kw = gw[`BB_POOL_KW_MSB:`BB_POOL_KW_LSB];
                    k_wy = gw[`BB_POOL_IROW_MSB:`BB_POOL_IROW_LSB];
                    k_wx = gw[`BB_POOL_IPIX_MSB:`BB_POOL_IPIX_LSB];
                    k_acc = gw[`BB_POOL_ACC_MSB:`BB_POOL_ACC_LSB];
                    k_inp = gw[`BB_POOL_INP_MSB:`BB_POOL_INP_LSB];
                    k_out = gw[`BB_POOL_OUT_MSB:`BB_POOL_OUT_LSB];
                    k_ow = gw[`BB_POOL_OW_MSB:`BB_POOL_OW_LSB];
                    k_npix = gw[`BB_POOL_OH_MSB:`BB_POOL_OH_LSB] * k_ow;
                    k_pixstep = gw[`BB_POOL_STRIDE_MSB:`BB_POOL_STRIDE_LSB] * gw[`BB_POOL_IPIX_MSB:`BB_POOL_IPIX_LSB];
                    k_rowstep = gw[`BB_POOL_STRIDE_MSB:`BB_POOL_STRIDE_LSB] * gw[`BB_POOL_IROW_MSB:`BB_POOL_IROW_LSB];
                    k_ostep = gw[`BB_POOL_OSTRIDE_MSB:`BB_POOL_OSTRIDE_LSB] * R;
                    for (r = 0; r < R; r = r + 1) k_ooff[r*32 +: 32] = gw[`BB_POOL_OSTRIDE_MSB:`BB_POOL_OSTRIDE_LSB] * r;
                end else begin
                    k_kh = 1; k_kw = 1;
                    k_acc = gw[`BB_REQUANT_ACC_MSB:`BB_REQUANT_ACC_LSB];
                    k_out = gw[`BB_REQUANT_OUT_MSB:`BB_REQUANT_OUT_LSB];
                    k_npix = gw[`BB_REQUANT_N_MSB:`BB_REQUANT_N_LSB];
                    k_ostep = gw[`BB_REQUANT_OSTRIDE_MSB:`BB_REQUANT_OSTRIDE_LSB] * R;
                    k_rstep = gw[`BB_REQUANT_RSTRIDE_MSB:`BB_REQUANT_RSTRIDE_LSB] * R;
                    for (r = 0; r < R; r = r + 1) begin
                        k_ooff[r*32 +: 32] = gw[`BB_REQUANT_OSTRIDE_MSB:`BB_REQUANT_OSTRIDE_LSB] * r;
                        k_roff[r*32 +: 32] = gw[`BB_REQUANT_RSTRIDE_MSB:`BB_REQUANT_RSTRIDE_LSB] * r;
                    end
                end
                k_passes = (k_npix + R - 1) / R;
                // OUT write groups (simulator/timing.py out_write_groups): c_g rows per group = rows r <= R
                // with r * ostride <= 8R (one bank per entry among the 8R banks), c_nw groups per pass
                k_os = n_rq ? gw[`BB_REQUANT_OSTRIDE_MSB:`BB_REQUANT_OSTRIDE_LSB] : gw[`BB_POOL_OSTRIDE_MSB:`BB_POOL_OSTRIDE_LSB];
                k_g = 1;
                for (r = 2; r <= R; r = r + 1) if (r * k_os <= 8 * R) k_g = r;
                k_nw = 0;
                for (r = 0; r < R; r = r + 1) if (r * k_g < k_npix && r * k_g < R) k_nw = k_nw + 1;
                c_g <= k_g;
                c_nw <= k_nw;
                c_outw <= (n_rq && gw[`BB_REQUANT_DEST_LSB] == `BB_DEST_OUT) || (n_pool && !gw[`BB_POOL_MODE_LSB]);
                c_stall <= k_accum && k_kh * k_kw * k_cw * k_bg == 1 && k_ct >= 3;
                bub <= 32'd0;
                op <= k_op;
                ph <= PH_ISSUE;
                c_k <= k_k; c_m <= k_m; c_rk <= k_rk; c_wmode <= k_wmode; c_accum <= k_accum; c_res <= k_res;
                c_kh <= k_kh; c_kw <= k_kw; c_cw <= k_cw; c_ct <= k_ct; c_bg <= k_bg; c_wy <= k_wy; c_wx <= k_wx;
                c_wgt <= k_wgt; c_acc <= k_acc; c_npix <= k_npix; c_passes <= k_passes; c_ow <= k_ow;
                c_inp <= k_inp; c_rinp <= k_rinp; c_out <= k_out; c_pixstep <= k_pixstep; c_rowstep <= k_rowstep;
                c_ostep <= k_ostep; c_rstep <= k_rstep; c_roff <= k_roff; c_ooff <= k_ooff;
                c_mode  <= gw[`BB_POOL_MODE_LSB];
                c_dest  <= gw[`BB_REQUANT_DEST_LSB];
                c_kout  <= gw[`BB_REQUANT_KOUT_MSB:`BB_REQUANT_KOUT_LSB];
                c_shift <= gw[`BB_REQUANT_SHIFT_MSB:`BB_REQUANT_SHIFT_LSB];
                c_lo    <= gw[`BB_REQUANT_LO_MSB:`BB_REQUANT_LO_LSB];
                c_hi    <= gw[`BB_REQUANT_HI_MSB:`BB_REQUANT_HI_LSB];
                c_slice <= n_rq ? gw[`BB_REQUANT_SLICE_MSB:`BB_REQUANT_SLICE_LSB] : gw[`BB_POOL_SLICE_MSB:`BB_POOL_SLICE_LSB];
                out_wmask <= {{(W-C){1'b0}}, {C{1'b1}}}
                             << ((n_rq ? gw[`BB_REQUANT_SLICE_MSB:`BB_REQUANT_SLICE_LSB]
                                       : gw[`BB_POOL_SLICE_MSB:`BB_POOL_SLICE_LSB]) * C);
                const_raddr <= gw[`BB_REQUANT_CONST_LSB +: AW_CONST];
                // the first issue
                nxt = 1'b1;
                tp_pass = 0; tp_p0 = 0; tp_t = 0; tp_ky = 0; tp_kx = 0; tp_c = 0; tp_g = 0;
                tp_i0 = 4'd0; tp_j0 = 4'd0; tp_woff_row = 0; tp_woff_col = 0; tp_woff = 0;
                tp_wb = k_wgt; tp_accb = k_acc; tp_rbase0 = k_rinp; tp_obase0 = k_out;
                for (r = 0; r < R; r = r + 1) tp_rv[r] = r < k_npix;
                chain = !n_rq;
                cx = 0;
                crb = k_inp;
                cb = k_inp;
            end else if (ph == PH_ISSUE && bub == 0 && (c_stall || (c_outw && d_fin && c_nw > 1))) begin
                bub <= c_stall ? 32'd1 : c_nw - 1;     // an issue followed by gap cycles: advance in the last one
            end else if (ph == PH_ISSUE && bub > 1) begin
                bub <= bub - 1;
            end else if (ph == PH_ISSUE) begin
                bub <= 32'd0;
                if (d_last) begin
                    ph   <= PH_DRAIN;
                    dcnt <= (op == OP_GEMM) ? GEMM_PIPELINE - 1 : ALU_PIPELINE - 1;
                end else begin
                    nxt = 1'b1;
                    tp_pass = pass; tp_p0 = p0; tp_t = t; tp_ky = ky; tp_kx = kx; tp_c = c; tp_g = g;
                    tp_i0 = i0; tp_j0 = j0; tp_woff_row = woff_row; tp_woff_col = woff_col; tp_woff = woff;
                    tp_wb = wb; tp_accb = accb; tp_rbase0 = rbase0; tp_obase0 = obase0; tp_rv = rv;
                    if (op == OP_RQ) begin
                        tp_pass = pass + 1;
                        tp_p0 = p0 + R;
                        tp_rbase0 = rbase0 + k_rstep;
                        tp_obase0 = obase0 + k_ostep;
                        for (r = 0; r < R; r = r + 1) tp_rv[r] = tp_p0 + r < k_npix;
                    end else if (g != k_bg - 1) begin
                        tp_g = g + 1;
                        ti = i0;  // advance the first branch pair by P
                        tj = j0;
                        for (q = 0; q < P; q = q + 1) begin
                            if (tj + 4'd1 == k_m) begin tj = 4'd0; ti = ti + 4'd1; end
                            else tj = tj + 4'd1;
                        end
                        tp_i0 = ti;
                        tp_j0 = tj;
                    end else begin
                        tp_g = 0; tp_i0 = 4'd0; tp_j0 = 4'd0;
                        tp_wb = wb + k_m;
                        if (c != k_cw - 1) begin
                            tp_c = c + 1;
                            tp_woff = woff + k_k;
                        end else begin
                            tp_c = 0;
                            if (kx != k_kw - 1) begin
                                tp_kx = kx + 1;
                                tp_woff_col = woff_col + k_wx;
                                tp_woff = tp_woff_col;
                            end else begin
                                tp_kx = 0;
                                if (ky != k_kh - 1) begin
                                    tp_ky = ky + 1;
                                    tp_woff_row = woff_row + k_wy;
                                    tp_woff_col = tp_woff_row;
                                    tp_woff = tp_woff_row;
                                end else begin
                                    tp_ky = 0; tp_woff_row = 0; tp_woff_col = 0; tp_woff = 0;
                                    if (t != k_ct - 1) begin
                                        tp_t = t + 1;
                                        tp_accb = accb + k_npix;
                                    end else begin  // next pass
                                        tp_t = 0;
                                        tp_pass = pass + 1;
                                        tp_p0 = p0 + R;
                                        tp_obase0 = obase0 + k_ostep;
                                        tp_wb = k_wgt;
                                        tp_accb = k_acc + tp_p0;
                                        chain = 1'b1;
                                        cx = nx;
                                        crb = nrb;
                                        cb = nb;
                                    end
                                end
                            end
                        end
                    end
                end
            end else if (ph == PH_DRAIN) begin
                dcnt <= dcnt - 1;
                if (dcnt == 32'd1) begin
                    ph <= PH_IDLE;
                    op <= OP_NONE;
                end
            end

            // pixel rows of a new pass: row r holds pixel p0 + r; base = INP entry of its window origin
            tp_base = base;
            if (chain) begin
                for (r = 0; r < R; r = r + 1) begin
                    tp_base[r*32 +: 32] = cb;
                    tp_rv[r] = tp_p0 + r < k_npix;
                    if (cx + 1 < k_ow) begin
                        cx = cx + 1;
                        cb = cb + k_pixstep;
                    end else begin
                        cx = 0;
                        crb = crb + k_rowstep;
                        cb = crb;
                    end
                end
                base <= tp_base;
                nx <= cx;
                nrb <= crb;
                nb <= cb;
            end

            // the next issue's state, its read ports and its descriptor
            if (nxt) begin
                pass <= tp_pass; p0 <= tp_p0; t <= tp_t; ky <= tp_ky; kx <= tp_kx; c <= tp_c; g <= tp_g;
                i0 <= tp_i0; j0 <= tp_j0; woff_row <= tp_woff_row; woff_col <= tp_woff_col; woff <= tp_woff;
                wb <= tp_wb; accb <= tp_accb; rbase0 <= tp_rbase0; obase0 <= tp_obase0; rv <= tp_rv;
                inp_ren <= {R{1'b0}};
                wgt_ren <= 1'b0;
                acc_ren <= {R{1'b0}};
                const_ren <= k_op == OP_RQ;
                d_first <= k_op == OP_RQ || (tp_ky == 0 && tp_kx == 0 && tp_c == 0 && tp_g == 0);
                d_fin   <= k_op == OP_RQ || (tp_ky == k_kh - 1 && tp_kx == k_kw - 1 && tp_c == k_cw - 1
                                             && tp_g == k_bg - 1);
                d_last  <= tp_pass == k_passes - 1 && (k_op == OP_RQ || (tp_ky == k_kh - 1 && tp_kx == k_kw - 1
                           && tp_c == k_cw - 1 && tp_g == k_bg - 1 && tp_t == k_ct - 1));
                if (k_op == OP_GEMM) begin
                    // branch pairs of the group: (i, j) = planes of INP and WGT, starting at (i0, j0). Row r
                    // reads the INP window from plane i0 of its pixel, WGT the window of the weight word;
                    // pair q takes INP entry i - i0 and WGT entry j of them.
                    ti = tp_i0;
                    tj = tp_j0;
                    /*verilator unroll_full*/
                    for (q = 0; q < P; q = q + 1) begin
                        d_bvalid[q] <= ti < k_k;
                        d_shift[q*4 +: 4] <= k_wmode ? ti : ti + tj;
                        ab = ti - tp_i0;
                        inp_off[q*3 +: 3] <= ab[2:0];
                        wgt_off[q*3 +: 3] <= tj[2:0];
                        if (tj + 4'd1 == k_m) begin
                            tj = 4'd0;
                            ti = ti + 4'd1;
                        end else begin
                            tj = tj + 4'd1;
                        end
                    end
                    wgt_ren <= 1'b1;
                    wgt_raddr <= tp_wb[AW_WGT-1:0];
                    wgt_rlen <= k_m;
                    inp_rlen <= P_RLEN;
                    /*verilator unroll_full*/
                    for (r = 0; r < R; r = r + 1) begin
                        inp_ren[r] <= tp_rv[r];
                        ab = tp_base[r*32 +: 32] + tp_woff + tp_i0;
                        inp_raddr[r*AW_INP +: AW_INP] <= ab[AW_INP-1:0];
                        acc_ren[r] <= tp_rv[r] && k_accum && tp_ky == 0 && tp_kx == 0 && tp_c == 0 && tp_g == 0;
                    end
                    acc_raddr <= tp_accb[AW_ACC-1:0];
                end else if (k_op == OP_POOL) begin
                    // planes q < k of the window position: the INP window from plane 0 of the pixel
                    inp_rlen <= 4'd8;
                    for (r = 0; r < R; r = r + 1) begin
                        inp_ren[r] <= tp_rv[r];
                        ab = tp_base[r*32 +: 32] + tp_woff;
                        inp_raddr[r*AW_INP +: AW_INP] <= ab[AW_INP-1:0];
                    end
                end else begin  // REQUANT: ACC entries of the pass's pixels, residual planes q < rk
                    inp_rlen <= 4'd8;
                    for (r = 0; r < R; r = r + 1) begin
                        acc_ren[r] <= tp_rv[r];
                        inp_ren[r] <= tp_rv[r] && k_res;
                        ab = tp_rbase0 + k_roff[r*32 +: 32];
                        inp_raddr[r*AW_INP +: AW_INP] <= ab[AW_INP-1:0];
                    end
                    ab = k_acc + tp_p0;
                    acc_raddr <= ab[AW_ACC-1:0];
                end
            end else begin
                inp_ren <= {R{1'b0}};
                wgt_ren <= 1'b0;
                acc_ren <= {R{1'b0}};
                const_ren <= 1'b0;
            end
        end
    end

`ifndef SYNTHESIS
    // Activity counters (simulation only; bb_tb reads them, the harness checks them against
    // simulator/activity.py): the datapaths' work, counted where they are enabled. The PE array has no
    // per-row or per-branch gating: every BGEMM issue runs all R x C PEs on all P branches (C*W xnor +
    // popcount bits and one accumulate per PE and branch), valid or not; REQUANT and POOL run R x C lanes
    // per issue (REQUANT's residual term only with res=1).
    reg [63:0] act_bitops, act_accum, act_rq, act_res, act_pool;
    always @(posedge clk) begin
        if (rst) begin
            act_bitops <= 64'd0;
            act_accum  <= 64'd0;
            act_rq     <= 64'd0;
            act_res    <= 64'd0;
            act_pool   <= 64'd0;
        end else begin
            if (s1_gemm) begin
                act_bitops <= act_bitops + R * C * P * W;
                act_accum  <= act_accum + R * C * P;
            end
            if (s1_rq) begin
                act_rq <= act_rq + R * C;
                if (c_res) act_res <= act_res + R * C;
            end
            if (s1_pool) act_pool <= act_pool + R * C;
        end
    end
`endif
endmodule
/* verilator lint_on WIDTHEXPAND */
