// bb_dma_tb: unit-bench top for the DMA path: bb_load and bb_store with the five banked buffers and bb_dram.
//
// The bench starts one LOAD (`go_ld`) or STORE (`go_st`) at a time with `word`, watches the grants and the
// engines' `last` cycles, reads any buffer entry combinationally through `peek_*` (0 inp, 1 wgt, 2 acc,
// 3 out, 4 const), writes ACC/OUT entries through `poke_*` (so STOREs have data), and dumps DRAM with
// `dump`. The clock comes from the bench (cocotb). Files: +dram=FILE, +dram_out=FILE (see bb_dram).
`timescale 1ns/1ps
`include "bitbranch_isa.vh"
module bb_dma_tb #(
    parameter ARRAY_ROWS           = 2,
    parameter ARRAY_COLS           = 4,
    parameter WORD_BITS            = 64,
    parameter INP_ENTRIES          = 1024,
    parameter WGT_ENTRIES          = 256,
    parameter ACC_ENTRIES          = 256,
    parameter OUT_ENTRIES          = 512,
    parameter CONST_ENTRIES        = 64,
    parameter DRAM_LATENCY         = 8,
    parameter DRAM_BYTES_PER_CYCLE = 8,
    parameter DMA_ROW_OVERHEAD     = 1,
    parameter DRAM_AW              = 16,
    parameter PW                   = ARRAY_COLS * 128   // widest entry (CONST) in bits
) (
    input  wire          clk,
    input  wire          rst,
    input  wire          go_ld,
    input  wire          go_st,
    input  wire [255:0]  word,
    input  wire [32:0]   dram_size,
    input  wire          dump,
    output wire          ld_gnt,
    output wire          st_gnt,
    output wire          ld_last,
    output wire          st_last,
    input  wire [2:0]    peek_buf,
    input  wire [15:0]   peek_addr,
    output wire [PW-1:0] peek_data,
    input  wire          poke_en,
    input  wire          poke_out,   // 0 ACC, 1 OUT
    input  wire [15:0]   poke_addr,
    input  wire [PW-1:0] poke_data
);
    localparam B = DRAM_BYTES_PER_CYCLE, W = WORD_BITS, C = ARRAY_COLS;
    localparam E_INP = W / 8, E_WGT = C * W / 8, E_ACC = C * 4, E_OUT = W / 8, E_CONST = C * `BB_CONST_BYTES_PER_LANE;
    localparam AW_INP = $clog2(INP_ENTRIES), AW_WGT = $clog2(WGT_ENTRIES), AW_ACC = $clog2(ACC_ENTRIES);
    localparam AW_OUT = $clog2(OUT_ENTRIES), AW_CONST = $clog2(CONST_ENTRIES);
    localparam FA_INP = AW_INP + $clog2(E_INP), FA_WGT = AW_WGT + $clog2(E_WGT), FA_CONST = AW_CONST + $clog2(E_CONST);
    localparam FA_ACC = AW_ACC + $clog2(E_ACC), FA_OUT = AW_OUT + $clog2(E_OUT);
    localparam FA_LD = (FA_INP > FA_WGT) ? ((FA_INP > FA_CONST) ? FA_INP : FA_CONST)
                                         : ((FA_WGT > FA_CONST) ? FA_WGT : FA_CONST);
    localparam FA_ST = (FA_ACC > FA_OUT) ? FA_ACC : FA_OUT;
    localparam TAGW = 2 + FA_LD + B;

    wire ld_req, st_req, rd_en, rsp_valid, wr_en;
    wire [31:0] rd_addr, wr_addr;
    wire [B-1:0] rd_mask, wr_mask;
    wire [TAGW-1:0] rd_tag, rsp_tag;
    wire [8*B-1:0] rsp_data, wr_data;
    wire [2:0] dw_en;
    wire [FA_LD-1:0] dw_addr;
    wire [B-1:0] dw_mask;
    wire [8*B-1:0] dw_data;
    wire [1:0] dr_en;
    wire [FA_ST-1:0] dr_addr;
    wire [8*B-1:0] acc_dr, out_dr;
    wire [8*E_INP-1:0] inp_q;
    wire [8*E_WGT-1:0] wgt_q;
    wire [8*E_ACC-1:0] acc_q;
    wire [8*E_OUT-1:0] out_q;
    wire [8*E_CONST-1:0] const_q;

    bb_dram #(.DRAM_LATENCY(DRAM_LATENCY), .B(B), .AWD(DRAM_AW), .TAGW(TAGW)) dram (
        .clk(clk), .rst(rst), .reload(1'b0), .ld_req(ld_req), .st_req(st_req), .ld_gnt(ld_gnt), .st_gnt(st_gnt),
        .rel(ld_last | st_last), .rd_en(rd_en), .rd_addr(rd_addr), .rd_mask(rd_mask), .rd_tag(rd_tag),
        .rsp_valid(rsp_valid), .rsp_data(rsp_data), .rsp_tag(rsp_tag),
        .wr_en(wr_en), .wr_addr(wr_addr), .wr_mask(wr_mask), .wr_data(wr_data),
        .dump(dump), .dump_size(dram_size)
    );
    bb_load #(.B(B), .DRAM_LATENCY(DRAM_LATENCY), .DMA_ROW_OVERHEAD(DMA_ROW_OVERHEAD), .E_INP(E_INP),
              .E_WGT(E_WGT), .E_CONST(E_CONST), .FAW(FA_LD), .TAGW(TAGW)) load (
        .clk(clk), .rst(rst), .go(go_ld), .go_word(word), .req(ld_req), .gnt(ld_gnt), .last(ld_last),
        .rd_en(rd_en), .rd_addr(rd_addr), .rd_mask(rd_mask), .rd_tag(rd_tag),
        .rsp_valid(rsp_valid), .rsp_data(rsp_data), .rsp_tag(rsp_tag),
        .dw_en(dw_en), .dw_addr(dw_addr), .dw_mask(dw_mask), .dw_data(dw_data)
    );
    bb_store #(.B(B), .DRAM_LATENCY(DRAM_LATENCY), .DMA_ROW_OVERHEAD(DMA_ROW_OVERHEAD), .E_ACC(E_ACC),
               .E_OUT(E_OUT), .FAW(FA_ST)) store (
        .clk(clk), .rst(rst), .go(go_st), .go_word(word), .req(st_req), .gnt(st_gnt), .last(st_last),
        .dr_en(dr_en), .dr_addr(dr_addr), .acc_data(acc_dr), .out_data(out_dr),
        .wr_en(wr_en), .wr_addr(wr_addr), .wr_mask(wr_mask), .wr_data(wr_data)
    );

    // the core's banked buffers (bb_winbuf, bb_accbuf, bb_banks for OUT), with the core's bank counts; the
    // bench reads an entry through a compute-side read (registered), and pokes ACC/OUT entries through port B
    localparam R = ARRAY_ROWS;
    localparam NB_INP = (B / E_INP > 8) ? B / E_INP : 8, NB_WGT = (B / E_WGT > 8) ? B / E_WGT : 8;
    localparam NB_CONST = (B / E_CONST > 1) ? B / E_CONST : 1, NB_ACC = (B / E_ACC > 4 * R) ? B / E_ACC : 4 * R;
    localparam NB_OUT = (B / E_OUT > 8 * R) ? B / E_OUT : 8 * R;
    wire [8*8*E_INP-1:0] inp_win;
    wire [8*8*E_WGT-1:0] wgt_win;
    bb_winbuf #(.COPIES(1), .NB(NB_INP), .NWIN(8), .DEPTH(INP_ENTRIES), .EBYTES(E_INP), .B(B), .FAW(FA_INP),
                .AW(AW_INP), .RAW($clog2(INP_ENTRIES / NB_INP))) inp (
        .clk(clk), .clear(1'b0), .dw_en(dw_en[0]), .dw_addr(dw_addr[FA_INP-1:0]), .dw_mask(dw_mask),
        .dw_data(dw_data), .ren(1'b1), .raddr(peek_addr[AW_INP-1:0]), .rlen(4'd8), .win(inp_win));
    assign inp_q = inp_win[8*E_INP-1:0];
    bb_winbuf #(.COPIES(1), .NB(NB_WGT), .NWIN(8), .DEPTH(WGT_ENTRIES), .EBYTES(E_WGT), .B(B), .FAW(FA_WGT),
                .AW(AW_WGT), .RAW($clog2(WGT_ENTRIES / NB_WGT))) wgt (
        .clk(clk), .clear(1'b0), .dw_en(dw_en[1]), .dw_addr(dw_addr[FA_WGT-1:0]), .dw_mask(dw_mask),
        .dw_data(dw_data), .ren(1'b1), .raddr(peek_addr[AW_WGT-1:0]), .rlen(4'd8), .win(wgt_win));
    assign wgt_q = wgt_win[8*E_WGT-1:0];
    bb_winbuf #(.COPIES(1), .NB(NB_CONST), .NWIN(1), .DEPTH(CONST_ENTRIES), .EBYTES(E_CONST), .B(B),
                .FAW(FA_CONST), .AW(AW_CONST), .RAW($clog2(CONST_ENTRIES / NB_CONST))) cst (
        .clk(clk), .clear(1'b0), .dw_en(dw_en[2]), .dw_addr(dw_addr[FA_CONST-1:0]), .dw_mask(dw_mask),
        .dw_data(dw_data), .ren(1'b1), .raddr(peek_addr[AW_CONST-1:0]), .rlen(4'd1), .win(const_q));
    wire acc_poke = poke_en && !poke_out;
    wire [R*8*E_ACC-1:0] acc_rows;
    bb_accbuf #(.R(R), .NB(NB_ACC), .DEPTH(ACC_ENTRIES), .EBYTES(E_ACC), .B(B), .FAW(FA_ACC), .AW(AW_ACC),
                .RAW($clog2(ACC_ENTRIES / NB_ACC))) acc (
        .clk(clk), .clear(1'b0), .dr_en(dr_en[0]), .dr_addr(dr_addr[FA_ACC-1:0]), .dr_data(acc_dr),
        .ren({{(R-1){1'b0}}, !acc_poke}), .raddr(peek_addr[AW_ACC-1:0]), .rdata(acc_rows),
        .wen({{(R-1){1'b0}}, acc_poke}), .waddr(poke_addr[AW_ACC-1:0]), .wsrc(2'd0),
        .wdata0({R{poke_data[8*E_ACC-1:0]}}), .wdata1({R*8*E_ACC{1'b0}}), .wdata2({R*8*E_ACC{1'b0}}));
    assign acc_q = acc_rows[8*E_ACC-1:0];
    // OUT has no compute-side read in the core: the bench uses its banks (bb_banks) directly
    localparam ORAW = $clog2(OUT_ENTRIES / NB_OUT);
    wire out_poke = poke_en && poke_out;
    wire [15:0] out_a = out_poke ? poke_addr : peek_addr;
    wire [NB_OUT*8*E_OUT-1:0] out_rd;
    reg  [15:0] out_peeked;
    always @(posedge clk) if (!out_poke) out_peeked <= peek_addr;
    wire [31:0] out_row = out_a / NB_OUT;
    bb_banks #(.NB(NB_OUT), .DEPTH(OUT_ENTRIES), .EBYTES(E_OUT), .B(B), .GB(8*E_OUT), .FAW(FA_OUT), .RAW(ORAW)) outb (
        .clk(clk), .clear(1'b0), .dw_en(1'b0), .dw_addr({FA_OUT{1'b0}}), .dw_mask({B{1'b0}}), .dw_data({8*B{1'b0}}),
        .dr_en(dr_en[1]), .dr_addr(dr_addr[FA_OUT-1:0]), .dr_data(out_dr),
        .b_en({{(NB_OUT-1){1'b0}}, 1'b1} << (out_a % NB_OUT)), .b_we({NB_OUT{out_poke}}),
        .b_addr({NB_OUT{out_row[ORAW-1:0]}}), .b_mask({NB_OUT{1'b1}}), .b_wdata({NB_OUT{poke_data[8*E_OUT-1:0]}}),
        .b_rdata(out_rd));
    assign out_q = out_rd[(out_peeked % NB_OUT)*8*E_OUT +: 8*E_OUT];

    assign peek_data = (peek_buf == 3'd0) ? {{(PW-8*E_INP){1'b0}}, inp_q}
                     : (peek_buf == 3'd1) ? {{(PW-8*E_WGT){1'b0}}, wgt_q}
                     : (peek_buf == 3'd2) ? {{(PW-8*E_ACC){1'b0}}, acc_q}
                     : (peek_buf == 3'd3) ? {{(PW-8*E_OUT){1'b0}}, out_q}
                     : const_q;
endmodule
