// bb_core: the bitbranch accelerator core: fetch, three instruction queues, the token scheduler, the load,
// compute and store engines, the five on-chip buffers, the cycle counter and the status register.
//
// Parameters are the hardware config (isa/hwconfig.py HwConfig fields, upper-cased; the harness passes a
// preset's values), plus IMEM_AW (instruction memory size). The DRAM is outside (bb_dram) behind the
// port signals below. Cycle 0 is the first cycle after `rst` falls. `done` rises when every instruction
// has retired (then `cycles` = max end cycle = the simulator's total), or when a check fails (`status`,
// `err_index`: the first failing instruction, see bb_status.vh), or when no unit can ever move again
// (status DEADLOCK). One trace record per retiring instruction and unit appears on `tr_*`.
`timescale 1ns/1ps
`include "bitbranch_isa.vh"
`include "bb_status.vh"
module bb_core #(
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
    // derived, not to be overridden: entry bytes per buffer (as isa.hwconfig.HwConfig.entry_bytes),
    // address widths, and the width of the DRAM read tag (buffer select, flat byte address, lane mask)
    parameter E_INP    = WORD_BITS / 8,
    parameter E_WGT    = ARRAY_COLS * WORD_BITS / 8,
    parameter E_ACC    = ARRAY_COLS * 4,
    parameter E_OUT    = WORD_BITS / 8,
    parameter E_CONST  = ARRAY_COLS * `BB_CONST_BYTES_PER_LANE,
    parameter FA_INP   = $clog2(INP_ENTRIES) + $clog2(E_INP),
    parameter FA_WGT   = $clog2(WGT_ENTRIES) + $clog2(E_WGT),
    parameter FA_CONST = $clog2(CONST_ENTRIES) + $clog2(E_CONST),
    parameter FA_LD    = (FA_INP > FA_WGT) ? ((FA_INP > FA_CONST) ? FA_INP : FA_CONST)
                                           : ((FA_WGT > FA_CONST) ? FA_WGT : FA_CONST),
    parameter TAGW     = 2 + FA_LD + DRAM_BYTES_PER_CYCLE
) (
    input  wire          clk,
    input  wire          rst,
    input  wire          clear,       // zero the on-chip buffers and reload the instruction memory (benches)
    input  wire [31:0]   insn_count,
    input  wire [32:0]   dram_size,
    // instruction memory write port (a host loads the program; the simulation benches tie it off and load
    // the memory from a file, see bb_fetch)
    input  wire          imem_we,
    input  wire [31:0]   imem_waddr,
    input  wire [`BB_INSN_BITS-1:0] imem_wdata,
    // DRAM port (bb_dram)
    output wire          ld_req,
    output wire          st_req,
    input  wire          ld_gnt,
    input  wire          st_gnt,
    output wire          dram_rel,
    output wire          rd_en,
    output wire [31:0]   rd_addr,
    output wire [DRAM_BYTES_PER_CYCLE-1:0]   rd_mask,
    output wire [TAGW-1:0] rd_tag,
    input  wire          rsp_valid,
    input  wire [8*DRAM_BYTES_PER_CYCLE-1:0] rsp_data,
    input  wire [TAGW-1:0] rsp_tag,
    output wire          wr_en,
    output wire [31:0]   wr_addr,
    output wire [DRAM_BYTES_PER_CYCLE-1:0]   wr_mask,
    output wire [8*DRAM_BYTES_PER_CYCLE-1:0] wr_data,
    // status
    output wire          done,
    output wire [3:0]    status,
    output wire [31:0]   err_index,
    output wire [63:0]   cycles,
    output reg  [63:0]   now,
    // per-instruction trace, one record per unit (load, compute, store)
    output wire [2:0]    tr_valid,
    output wire [3*32-1:0] tr_index,
    output wire [3*64-1:0] tr_disp,
    output wire [3*64-1:0] tr_start,
    output wire [3*64-1:0] tr_grant,
    output wire [3*64-1:0] tr_end
);
    localparam R = ARRAY_ROWS, C = ARRAY_COLS, W = WORD_BITS, P = BRANCH_PARALLEL, B = DRAM_BYTES_PER_CYCLE;
    localparam IW = `BB_INSN_BITS, XW = 32, YW = 64;
    // Banks per buffer (docs/rtl.md "Memory system"): enough for a DMA beat (B bytes) to touch each bank at
    // most once, and for the compute unit's accesses of one cycle: INP/WGT windows of 8 entries; ACC runs of
    // R entries read and written in one cycle (4R: docs/timing.md 4.1); OUT 8 planes x R rows (8R).
    localparam NB_INP   = (B / E_INP > 8) ? B / E_INP : 8;
    localparam NB_WGT   = (B / E_WGT > 8) ? B / E_WGT : 8;
    localparam NB_CONST = (B / E_CONST > 1) ? B / E_CONST : 1;
    localparam NB_ACC   = (B / E_ACC > 4 * R) ? B / E_ACC : 4 * R;
    localparam NB_OUT   = (B / E_OUT > 8 * R) ? B / E_OUT : 8 * R;
    localparam AW_INP   = (INP_ENTRIES > 1) ? $clog2(INP_ENTRIES) : 1;
    localparam AW_WGT   = (WGT_ENTRIES > 1) ? $clog2(WGT_ENTRIES) : 1;
    localparam AW_ACC   = (ACC_ENTRIES > 1) ? $clog2(ACC_ENTRIES) : 1;
    localparam AW_OUT   = (OUT_ENTRIES > 1) ? $clog2(OUT_ENTRIES) : 1;
    localparam AW_CONST = (CONST_ENTRIES > 1) ? $clog2(CONST_ENTRIES) : 1;
    // bank rows: ceil(entries / NB) (with R = 3, NB = 12 banks do not divide a power-of-two buffer)
    localparam RA_INP   = ((INP_ENTRIES + NB_INP - 1) / NB_INP > 1) ? $clog2((INP_ENTRIES + NB_INP - 1) / NB_INP) : 1;
    localparam RA_WGT   = ((WGT_ENTRIES + NB_WGT - 1) / NB_WGT > 1) ? $clog2((WGT_ENTRIES + NB_WGT - 1) / NB_WGT) : 1;
    localparam RA_CONST = ((CONST_ENTRIES + NB_CONST - 1) / NB_CONST > 1) ? $clog2((CONST_ENTRIES + NB_CONST - 1) / NB_CONST) : 1;
    localparam RA_ACC   = ((ACC_ENTRIES + NB_ACC - 1) / NB_ACC > 1) ? $clog2((ACC_ENTRIES + NB_ACC - 1) / NB_ACC) : 1;
    localparam RA_OUT   = ((OUT_ENTRIES + NB_OUT - 1) / NB_OUT > 1) ? $clog2((OUT_ENTRIES + NB_OUT - 1) / NB_OUT) : 1;
    localparam FA_ACC   = AW_ACC + $clog2(E_ACC);
    localparam FA_OUT   = AW_OUT + $clog2(E_OUT);
    localparam FA_ST    = (FA_ACC > FA_OUT) ? FA_ACC : FA_OUT;
    localparam QW = XW + YW + IW;   // instruction queue entry: index, dispatch cycle, word
    localparam QCW = $clog2(QUEUE_DEPTH + 1);

    // The RTL realises the timing contract under these assumptions (the harness checks them too).
`ifndef SYNTHESIS
    initial begin
        if (GEMM_PIPELINE < 2 || ALU_PIPELINE < 2 || DRAM_LATENCY < 1 || W % 64 != 0 || W % C != 0
            || (1 << $clog2(B)) != B || (1 << $clog2(E_WGT)) != E_WGT || (1 << $clog2(E_ACC)) != E_ACC
            || (1 << $clog2(E_INP)) != E_INP || (1 << $clog2(E_CONST)) != E_CONST) begin
            $display("bb_core: unsupported hardware config (pipelines >= 2, powers of two entry/beat bytes)");
            $finish;
        end
    end
`endif

    reg           halt;   // = `done`; internal logic reads this, never the port (a bench may watch the port)

    // ---- fetch and instruction queues ----------------------------------------------------------------
    wire [2:0]    dispatch, take, room;
    wire [IW-1:0] f_word;
    wire [XW-1:0] f_index;
    wire          all_dispatched, f_stalled;
    wire [3:0]    f_status;
    wire [XW-1:0] f_err_index;
    wire [3*QW-1:0]  q_head;
    wire [3*QCW-1:0] q_count;
    wire [2:0]    head_valid;

    bb_fetch #(
        .ARRAY_COLS(C), .WORD_BITS(W), .INP_ENTRIES(INP_ENTRIES), .WGT_ENTRIES(WGT_ENTRIES),
        .ACC_ENTRIES(ACC_ENTRIES), .OUT_ENTRIES(OUT_ENTRIES), .CONST_ENTRIES(CONST_ENTRIES),
        .IMEM_AW(IMEM_AW), .XW(XW), .YW(YW)
    ) fetch (
        .clk(clk), .rst(rst), .reload(clear), .imem_we(imem_we), .imem_waddr(imem_waddr),
        .imem_wdata(imem_wdata), .insn_count(insn_count), .dram_size(dram_size), .room(room),
        .dispatch(dispatch), .word(f_word), .index(f_index), .all_dispatched(all_dispatched),
        .stalled(f_stalled), .err_status(f_status), .err_index(f_err_index)
    );

    genvar u;
    generate
        for (u = 0; u < 3; u = u + 1) begin : g_queue
            bb_fifo #(.WIDTH(QW), .DEPTH(QUEUE_DEPTH), .CW(QCW)) queue (
                .clk(clk), .rst(rst), .push(dispatch[u] && !halt), .push_data({f_index, now, f_word}),
                .pop(take[u]), .head(q_head[u*QW +: QW]), .count(q_count[u*QCW +: QCW])
            );
            assign head_valid[u] = q_count[u*QCW +: QCW] != {QCW{1'b0}};
            assign room[u] = (q_count[u*QCW +: QCW] - {{(QCW-1){1'b0}}, take[u]}) < QUEUE_DEPTH;
        end
    endgenerate

    // ---- scheduler -----------------------------------------------------------------------------------
    wire [3*IW-1:0] head_word, go_word;
    wire [3*XW-1:0] head_index;
    wire [3*YW-1:0] head_disp;
    generate
        for (u = 0; u < 3; u = u + 1) begin : g_head
            assign head_word[u*IW +: IW]  = q_head[u*QW +: IW];
            assign head_disp[u*YW +: YW]  = q_head[u*QW + IW +: YW];
            assign head_index[u*XW +: XW] = q_head[u*QW + IW + YW +: XW];
        end
    endgenerate

    wire [2:0] go, eng_last, s_idle, s_busy;
    wire       progress, any_blocked;
    wire [XW-1:0] blocked_index;
    wire       ld_last, st_last, cp_last;
    assign eng_last = {st_last, cp_last, ld_last};

    bb_sched #(.TOKEN_DEPTH(TOKEN_DEPTH), .IW(IW), .XW(XW), .YW(YW)) sched (
        .clk(clk), .rst(rst), .now(now),
        .head_valid(head_valid & {3{!halt}}), .head_word(head_word), .head_index(head_index),
        .head_disp(head_disp), .take(take), .go(go), .go_word(go_word), .eng_last(eng_last),
        .grant({st_gnt, 1'b0, ld_gnt}), .idle(s_idle), .busy(s_busy), .progress(progress),
        .blocked_index(blocked_index), .any_blocked(any_blocked), .last_end(cycles),
        .tr_valid(tr_valid), .tr_index(tr_index), .tr_disp(tr_disp), .tr_start(tr_start),
        .tr_grant(tr_grant), .tr_end(tr_end)
    );

    // ---- buffers -------------------------------------------------------------------------------------
    wire [2:0]         l_dw_en;
    wire [FA_LD-1:0]   l_dw_addr;
    wire [B-1:0]       l_dw_mask;
    wire [8*B-1:0]     l_dw_data;
    wire [1:0]         s_dr_en;
    wire [FA_ST-1:0]   s_dr_addr;
    wire [8*B-1:0]     acc_dr_data, out_dr_data;

    wire [R-1:0]            inp_ren;
    wire [R*AW_INP-1:0]     inp_raddr;
    wire [3:0]              inp_rlen, wgt_rlen;
    wire [R*8*W-1:0]        inp_win;
    wire                    wgt_ren;
    wire [AW_WGT-1:0]       wgt_raddr;
    wire [8*C*W-1:0]        wgt_win;
    wire                    const_ren;
    wire [AW_CONST-1:0]     const_raddr;
    wire [C*8*`BB_CONST_BYTES_PER_LANE-1:0] const_rdata;
    wire [R-1:0]            acc_ren, acc_wen;
    wire [AW_ACC-1:0]       acc_raddr, acc_waddr;
    wire [R*C*32-1:0]       acc_rdata, pe_sum, rq_acc, pl_acc;
    wire [1:0]              acc_wsrc;
    wire                    out_wsrc;
    wire [R-1:0]            out_wen;
    wire [R*AW_OUT-1:0]     out_wbase;
    wire [3:0]              out_wn;
    wire [R*8*C-1:0]        rq_out, pl_out;
    wire [W-1:0]            out_wmask;

    // Every buffer is made of two-port SRAM banks (bb_sram_2p; docs/rtl.md "Memory system"): port A for the
    // DMA engines, port B for the compute unit, entries interleaved over the banks (entry e in bank e % NB).
    // INP: one copy per array row (each row reads its own pixels' windows), all copies written by LOAD.
    bb_winbuf #(.COPIES(R), .NB(NB_INP), .NWIN(8), .DEPTH(INP_ENTRIES), .EBYTES(E_INP), .B(B), .FAW(FA_INP),
                .AW(AW_INP), .RAW(RA_INP)) inp (
        .clk(clk), .clear(clear), .dw_en(l_dw_en[0]), .dw_addr(l_dw_addr[FA_INP-1:0]), .dw_mask(l_dw_mask),
        .dw_data(l_dw_data), .ren(inp_ren), .raddr(inp_raddr), .rlen(inp_rlen), .win(inp_win)
    );
    bb_winbuf #(.COPIES(1), .NB(NB_WGT), .NWIN(8), .DEPTH(WGT_ENTRIES), .EBYTES(E_WGT), .B(B), .FAW(FA_WGT),
                .AW(AW_WGT), .RAW(RA_WGT)) wgt (
        .clk(clk), .clear(clear), .dw_en(l_dw_en[1]), .dw_addr(l_dw_addr[FA_WGT-1:0]), .dw_mask(l_dw_mask),
        .dw_data(l_dw_data), .ren(wgt_ren), .raddr(wgt_raddr), .rlen(wgt_rlen), .win(wgt_win)
    );
    bb_winbuf #(.COPIES(1), .NB(NB_CONST), .NWIN(1), .DEPTH(CONST_ENTRIES), .EBYTES(E_CONST), .B(B),
                .FAW(FA_CONST), .AW(AW_CONST), .RAW(RA_CONST)) cst (
        .clk(clk), .clear(clear), .dw_en(l_dw_en[2]), .dw_addr(l_dw_addr[FA_CONST-1:0]), .dw_mask(l_dw_mask),
        .dw_data(l_dw_data), .ren(const_ren), .raddr(const_raddr), .rlen(4'd1), .win(const_rdata)
    );
    bb_accbuf #(.R(R), .NB(NB_ACC), .DEPTH(ACC_ENTRIES), .EBYTES(E_ACC), .B(B), .FAW(FA_ACC), .AW(AW_ACC),
                .RAW(RA_ACC)) acc (
        .clk(clk), .clear(clear), .dr_en(s_dr_en[0]), .dr_addr(s_dr_addr[FA_ACC-1:0]), .dr_data(acc_dr_data),
        .ren(acc_ren), .raddr(acc_raddr), .rdata(acc_rdata), .wen(acc_wen), .waddr(acc_waddr), .wsrc(acc_wsrc),
        .wdata0(pe_sum), .wdata1(rq_acc), .wdata2(pl_acc)
    );
    bb_outbuf #(.R(R), .C(C), .NB(NB_OUT), .DEPTH(OUT_ENTRIES), .EBYTES(E_OUT), .B(B), .FAW(FA_OUT),
                .AW(AW_OUT), .RAW(RA_OUT)) outb (
        .clk(clk), .clear(clear), .dr_en(s_dr_en[1]), .dr_addr(s_dr_addr[FA_OUT-1:0]), .dr_data(out_dr_data),
        .wen(out_wen), .wbase(out_wbase), .wn(out_wn), .wsrc(out_wsrc), .wmask(out_wmask),
        .wdata0(rq_out), .wdata1(pl_out)
    );

    // ---- engines -------------------------------------------------------------------------------------
    bb_load #(
        .B(B), .DRAM_LATENCY(DRAM_LATENCY), .DMA_ROW_OVERHEAD(DMA_ROW_OVERHEAD), .E_INP(E_INP), .E_WGT(E_WGT),
        .E_CONST(E_CONST), .FAW(FA_LD), .TAGW(TAGW)
    ) load (
        .clk(clk), .rst(rst), .go(go[0]), .go_word(go_word[0 +: IW]), .req(ld_req), .gnt(ld_gnt), .last(ld_last),
        .rd_en(rd_en), .rd_addr(rd_addr), .rd_mask(rd_mask), .rd_tag(rd_tag),
        .rsp_valid(rsp_valid), .rsp_data(rsp_data), .rsp_tag(rsp_tag),
        .dw_en(l_dw_en), .dw_addr(l_dw_addr), .dw_mask(l_dw_mask), .dw_data(l_dw_data)
    );
    bb_store #(
        .B(B), .DRAM_LATENCY(DRAM_LATENCY), .DMA_ROW_OVERHEAD(DMA_ROW_OVERHEAD), .E_ACC(E_ACC), .E_OUT(E_OUT),
        .FAW(FA_ST)
    ) store (
        .clk(clk), .rst(rst), .go(go[2]), .go_word(go_word[2*IW +: IW]), .req(st_req), .gnt(st_gnt),
        .last(st_last), .dr_en(s_dr_en), .dr_addr(s_dr_addr), .acc_data(acc_dr_data), .out_data(out_dr_data),
        .wr_en(wr_en), .wr_addr(wr_addr), .wr_mask(wr_mask), .wr_data(wr_data)
    );
    assign dram_rel = ld_last | st_last;

    bb_compute #(
        .R(R), .C(C), .W(W), .P(P), .GEMM_PIPELINE(GEMM_PIPELINE), .ALU_PIPELINE(ALU_PIPELINE),
        .AW_INP(AW_INP), .AW_WGT(AW_WGT), .AW_ACC(AW_ACC), .AW_OUT(AW_OUT), .AW_CONST(AW_CONST)
    ) compute (
        .clk(clk), .rst(rst), .go(go[1]), .go_word(go_word[IW +: IW]), .last(cp_last),
        .inp_ren(inp_ren), .inp_raddr(inp_raddr), .inp_rlen(inp_rlen), .inp_win(inp_win),
        .wgt_ren(wgt_ren), .wgt_raddr(wgt_raddr), .wgt_rlen(wgt_rlen), .wgt_win(wgt_win),
        .const_ren(const_ren), .const_raddr(const_raddr), .const_rdata(const_rdata),
        .acc_ren(acc_ren), .acc_raddr(acc_raddr), .acc_rdata(acc_rdata),
        .acc_wen(acc_wen), .acc_waddr(acc_waddr), .acc_wsrc(acc_wsrc), .out_wen(out_wen), .out_wbase(out_wbase),
        .out_wn(out_wn), .out_wsrc(out_wsrc), .out_wmask(out_wmask), .pe_sum(pe_sum), .rq_acc(rq_acc),
        .pl_acc(pl_acc), .rq_out(rq_out), .pl_out(pl_out)
    );

    // ---- cycle counter, completion, status -----------------------------------------------------------
    wire queues_empty = !(|head_valid);
    wire drained  = all_dispatched && queues_empty && (&s_idle);
    wire stuck    = !progress && !(|s_busy) && !(|dispatch) && !drained;
    reg  [3:0]    dl_status;
    reg  [XW-1:0] dl_index;
    assign done      = halt;
    assign status    = (f_status != `BB_ST_OK) ? f_status : dl_status;
    assign err_index = (f_status != `BB_ST_OK) ? f_err_index : dl_index;

    always @(posedge clk) begin
        if (rst) begin
            now       <= {YW{1'b0}};
            halt      <= 1'b0;
            dl_status <= `BB_ST_OK;
            dl_index  <= {XW{1'b0}};
        end else if (!halt) begin
            now <= now + 1'b1;
            if (drained || f_status != `BB_ST_OK) begin
                halt <= 1'b1;
            end else if (stuck) begin
                halt      <= 1'b1;
                dl_status <= `BB_ST_DEADLOCK;
                dl_index  <= (any_blocked && (!f_stalled || blocked_index < f_index)) ? blocked_index : f_index;
            end
        end
    end
endmodule
