// bb_dma_tb: unit-bench top for the DMA path: bb_load and bb_store with the five buffers and bb_dram.
//
// The bench starts one LOAD (`go_ld`) or STORE (`go_st`) at a time with `word`, watches the grants and the
// engines' `last` cycles, reads any buffer entry combinationally through `peek_*` (0 inp, 1 wgt, 2 acc,
// 3 out, 4 const), writes ACC/OUT entries through `poke_*` (so STOREs have data), and dumps DRAM with
// `dump`. The clock comes from the bench (cocotb). Files: +dram=FILE, +dram_out=FILE (see bb_dram).
`timescale 1ns/1ps
module bb_dma_tb #(
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
    localparam E_INP = W / 8, E_WGT = C * W / 8, E_ACC = C * 4, E_OUT = W / 8, E_CONST = C * 16;
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

    bb_buf #(.DEPTH(INP_ENTRIES), .EBYTES(E_INP), .B(B), .NRD(1), .NWR(1), .AW(AW_INP), .FAW(FA_INP)) inp (
        .clk(clk), .clear(1'b0), .dw_en(dw_en[0]), .dw_addr(dw_addr[FA_INP-1:0]), .dw_mask(dw_mask), .dw_data(dw_data),
        .dr_en(1'b0), .dr_addr({FA_INP{1'b0}}), .dr_data(), .rd_en(1'b1), .rd_addr(peek_addr[AW_INP-1:0]), .rd_data(inp_q),
        .xr_en(1'b0), .xr_base({AW_INP{1'b0}}), .xr_n(4'd0), .xr_data(),
        .wr_en(1'b0), .wr_addr({AW_INP{1'b0}}), .wr_src(2'd0), .wr_data0({8*E_INP{1'b0}}),
        .wr_data1({8*E_INP{1'b0}}), .wr_data2({8*E_INP{1'b0}}), .wr_mask({8*E_INP{1'b0}}));
    bb_buf #(.DEPTH(WGT_ENTRIES), .EBYTES(E_WGT), .B(B), .NRD(1), .NWR(1), .AW(AW_WGT), .FAW(FA_WGT)) wgt (
        .clk(clk), .clear(1'b0), .dw_en(dw_en[1]), .dw_addr(dw_addr[FA_WGT-1:0]), .dw_mask(dw_mask), .dw_data(dw_data),
        .dr_en(1'b0), .dr_addr({FA_WGT{1'b0}}), .dr_data(), .rd_en(1'b1), .rd_addr(peek_addr[AW_WGT-1:0]), .rd_data(wgt_q),
        .xr_en(1'b0), .xr_base({AW_WGT{1'b0}}), .xr_n(4'd0), .xr_data(),
        .wr_en(1'b0), .wr_addr({AW_WGT{1'b0}}), .wr_src(2'd0), .wr_data0({8*E_WGT{1'b0}}),
        .wr_data1({8*E_WGT{1'b0}}), .wr_data2({8*E_WGT{1'b0}}), .wr_mask({8*E_WGT{1'b0}}));
    bb_buf #(.DEPTH(CONST_ENTRIES), .EBYTES(E_CONST), .B(B), .NRD(1), .NWR(1), .AW(AW_CONST), .FAW(FA_CONST)) cst (
        .clk(clk), .clear(1'b0), .dw_en(dw_en[2]), .dw_addr(dw_addr[FA_CONST-1:0]), .dw_mask(dw_mask), .dw_data(dw_data),
        .dr_en(1'b0), .dr_addr({FA_CONST{1'b0}}), .dr_data(), .rd_en(1'b1), .rd_addr(peek_addr[AW_CONST-1:0]),
        .rd_data(const_q), .xr_en(1'b0), .xr_base({AW_CONST{1'b0}}), .xr_n(4'd0), .xr_data(),
        .wr_en(1'b0), .wr_addr({AW_CONST{1'b0}}), .wr_src(2'd0), .wr_data0({8*E_CONST{1'b0}}),
        .wr_data1({8*E_CONST{1'b0}}), .wr_data2({8*E_CONST{1'b0}}), .wr_mask({8*E_CONST{1'b0}}));
    bb_buf #(.DEPTH(ACC_ENTRIES), .EBYTES(E_ACC), .B(B), .NRD(1), .NWR(1), .AW(AW_ACC), .FAW(FA_ACC)) acc (
        .clk(clk), .clear(1'b0), .dw_en(1'b0), .dw_addr({FA_ACC{1'b0}}), .dw_mask({B{1'b0}}), .dw_data({8*B{1'b0}}),
        .dr_en(dr_en[0]), .dr_addr(dr_addr[FA_ACC-1:0]), .dr_data(acc_dr), .rd_en(1'b1), .rd_addr(peek_addr[AW_ACC-1:0]),
        .rd_data(acc_q), .xr_en(1'b0), .xr_base({AW_ACC{1'b0}}), .xr_n(4'd0), .xr_data(),
        .wr_en(poke_en && !poke_out), .wr_addr(poke_addr[AW_ACC-1:0]),
        .wr_src(2'd0), .wr_data0(poke_data[8*E_ACC-1:0]), .wr_data1({8*E_ACC{1'b0}}),
        .wr_data2({8*E_ACC{1'b0}}), .wr_mask({8*E_ACC{1'b1}}));
    bb_buf #(.DEPTH(OUT_ENTRIES), .EBYTES(E_OUT), .B(B), .NRD(1), .NWR(1), .AW(AW_OUT), .FAW(FA_OUT)) outb (
        .clk(clk), .clear(1'b0), .dw_en(1'b0), .dw_addr({FA_OUT{1'b0}}), .dw_mask({B{1'b0}}), .dw_data({8*B{1'b0}}),
        .dr_en(dr_en[1]), .dr_addr(dr_addr[FA_OUT-1:0]), .dr_data(out_dr), .rd_en(1'b1), .rd_addr(peek_addr[AW_OUT-1:0]),
        .rd_data(out_q), .xr_en(1'b0), .xr_base({AW_OUT{1'b0}}), .xr_n(4'd0), .xr_data(),
        .wr_en(poke_en && poke_out), .wr_addr(poke_addr[AW_OUT-1:0]),
        .wr_src(2'd0), .wr_data0(poke_data[8*E_OUT-1:0]), .wr_data1({8*E_OUT{1'b0}}),
        .wr_data2({8*E_OUT{1'b0}}), .wr_mask({8*E_OUT{1'b1}}));

    assign peek_data = (peek_buf == 3'd0) ? {{(PW-8*E_INP){1'b0}}, inp_q}
                     : (peek_buf == 3'd1) ? {{(PW-8*E_WGT){1'b0}}, wgt_q}
                     : (peek_buf == 3'd2) ? {{(PW-8*E_ACC){1'b0}}, acc_q}
                     : (peek_buf == 3'd3) ? {{(PW-8*E_OUT){1'b0}}, out_q}
                     : const_q;
endmodule
