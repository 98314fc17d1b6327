// bb_load: the LOAD DMA engine (DRAM -> INP/WGT/CONST with zero fill; docs/isa.md `load`).
//
// On `go` it latches the instruction and raises a DRAM port request. From the grant cycle g it walks the
// SRAM rows (pad_top zero rows, the data rows, pad_bottom zero rows): each row is ceil(width*E/B) beats
// of B bytes (width = pad_left + len + pad_right entries) followed by DMA_ROW_OVERHEAD idle cycles, and
// each beat is a DRAM read whose lanes outside the row's data bytes are zero (no DRAM access). After the
// last row it waits DRAM_LATENCY cycles for the last data; its last cycle (`last`, which also releases
// the port) is g + hold - 1 with hold = L + rows_total * (beats + O), simulator/timing.py load_hold.
// Returning data (`rsp_*`, tagged with the buffer, flat byte address and row-lane mask) is written into
// the buffer in the cycle it arrives, so every byte is in place at the instruction's end.
`timescale 1ns/1ps
`include "bitbranch_isa.vh"
module bb_load #(
    parameter B                = 8,
    parameter DRAM_LATENCY     = 8,
    parameter DMA_ROW_OVERHEAD = 1,
    parameter E_INP            = 8,
    parameter E_WGT            = 32,
    parameter E_CONST          = 64,
    parameter FAW              = 16,
    parameter TAGW             = 2 + 16 + 8
) (
    input  wire                     clk,
    input  wire                     rst,
    input  wire                     go,
    input  wire [`BB_INSN_BITS-1:0] go_word,
    output wire                     req,
    input  wire                     gnt,
    output wire                     last,
    // DRAM reads
    output wire                     rd_en,
    output wire [31:0]              rd_addr,
    output wire [B-1:0]             rd_mask,
    output wire [TAGW-1:0]          rd_tag,
    input  wire                     rsp_valid,
    input  wire [8*B-1:0]           rsp_data,
    input  wire [TAGW-1:0]          rsp_tag,
    // buffer writes: one-hot buffer select {const, wgt, inp}
    output wire [2:0]               dw_en,
    output wire [FAW-1:0]           dw_addr,
    output wire [B-1:0]             dw_mask,
    output wire [8*B-1:0]           dw_data
);
    localparam LB = $clog2(B);

    wire [`BB_INSN_BITS-1:0] w = go_word;
    wire [2:0]  f_buf  = w[`BB_LOAD_BUF_MSB:`BB_LOAD_BUF_LSB];
    wire [15:0] f_sram = w[`BB_LOAD_SRAM_MSB:`BB_LOAD_SRAM_LSB];
    wire [31:0] f_dram = w[`BB_LOAD_DRAM_MSB:`BB_LOAD_DRAM_LSB];
    wire [15:0] f_rows = w[`BB_LOAD_ROWS_MSB:`BB_LOAD_ROWS_LSB];
    wire [15:0] f_len  = w[`BB_LOAD_LEN_MSB:`BB_LOAD_LEN_LSB];
    wire [31:0] f_dstr = w[`BB_LOAD_DSTRIDE_MSB:`BB_LOAD_DSTRIDE_LSB];
    wire [15:0] f_sstr = w[`BB_LOAD_SSTRIDE_MSB:`BB_LOAD_SSTRIDE_LSB];
    wire [7:0]  f_pt   = w[`BB_LOAD_PAD_TOP_MSB:`BB_LOAD_PAD_TOP_LSB];
    wire [7:0]  f_pb   = w[`BB_LOAD_PAD_BOTTOM_MSB:`BB_LOAD_PAD_BOTTOM_LSB];
    wire [15:0] f_pl   = w[`BB_LOAD_PAD_LEFT_MSB:`BB_LOAD_PAD_LEFT_LSB];
    wire [15:0] f_pr   = w[`BB_LOAD_PAD_RIGHT_MSB:`BB_LOAD_PAD_RIGHT_LSB];
    wire [31:0] f_e    = (f_buf == `BB_BUF_WGT) ? E_WGT : (f_buf == `BB_BUF_CONST) ? E_CONST : E_INP;
    wire [31:0] f_width = {16'b0, f_pl} + {16'b0, f_len} + {16'b0, f_pr};
    wire [31:0] f_sstep = (f_sstr != 16'd0) ? {16'b0, f_sstr} : f_width;
    wire [31:0] f_rowb  = f_width * f_e;

    reg [1:0]  sel;          // 0 inp, 1 wgt, 2 const
    reg [31:0] pt, pt_rows;  // first data row; first row after the data rows
    reg [31:0] row_bytes, data_lo, data_hi;
    reg [31:0] sstep_b, dstride;
    reg [31:0] srow;         // flat byte address of the current SRAM row
    reg [31:0] drow;         // DRAM address of the current data row

    wire        start = go && w[`BB_OPCODE_LSB +: `BB_OPCODE_W] == `BB_OP_LOAD;
    wire        idle, active, beat_on, row_end;
    wire [31:0] beat, row;
    bb_dma_seq #(.DRAM_LATENCY(DRAM_LATENCY), .DMA_ROW_OVERHEAD(DMA_ROW_OVERHEAD)) seq (
        .clk(clk), .rst(rst), .start(start),
        .rows_in({24'b0, f_pt} + {16'b0, f_rows} + {24'b0, f_pb}), .beats_in((f_rowb + B - 1) >> LB),
        .idle(idle), .req(req), .gnt(gnt), .active(active), .beat_on(beat_on), .beat(beat), .row(row),
        .row_end(row_end), .last(last)
    );

    // Lanes of the beat at row byte offset `o` that the row covers (wmask) and that carry DRAM data (dmask).
    function [2*B-1:0] lanes;
        input [31:0] o;
        input [31:0] rb;
        input [31:0] lo;
        input [31:0] hi;
        input        data;
        reg [B:0] m_end, m_lo, m_hi;
        reg [31:0] n_end, n_lo, n_hi;
        begin
            n_end = (rb > o) ? ((rb - o > B) ? B : rb - o) : 32'd0;
            n_lo  = (lo > o) ? ((lo - o > B) ? B : lo - o) : 32'd0;
            n_hi  = (hi > o) ? ((hi - o > B) ? B : hi - o) : 32'd0;
            m_end = ({{B{1'b0}}, 1'b1} << n_end) - 1'b1;
            m_lo  = ({{B{1'b0}}, 1'b1} << n_lo) - 1'b1;
            m_hi  = ({{B{1'b0}}, 1'b1} << n_hi) - 1'b1;
            lanes = {m_end[B-1:0], data ? (m_hi[B-1:0] & ~m_lo[B-1:0] & m_end[B-1:0]) : {B{1'b0}}};
        end
    endfunction

    wire [31:0] o       = beat << LB;
    wire        is_data = (row >= pt) && (row < pt_rows);
    wire [2*B-1:0] lm   = lanes(o, row_bytes, data_lo, data_hi, is_data);

    assign rd_en   = beat_on;
    assign rd_addr = drow + o - data_lo;
    assign rd_mask = lm[B-1:0];
    assign rd_tag  = {sel, srow[FAW-1:0] + o[FAW-1:0], lm[2*B-1:B]};

    wire [1:0]     t_sel  = rsp_tag[TAGW-1 -: 2];
    assign dw_en   = rsp_valid ? {t_sel == 2'd2, t_sel == 2'd1, t_sel == 2'd0} : 3'b000;
    assign dw_addr = rsp_tag[B +: FAW];
    assign dw_mask = rsp_tag[B-1:0];
    assign dw_data = rsp_data;

    always @(posedge clk) begin
        if (start && idle) begin
            sel       <= (f_buf == `BB_BUF_WGT) ? 2'd1 : (f_buf == `BB_BUF_CONST) ? 2'd2 : 2'd0;
            pt        <= {24'b0, f_pt};
            pt_rows   <= {24'b0, f_pt} + {16'b0, f_rows};
            row_bytes <= f_rowb;
            data_lo   <= {16'b0, f_pl} * f_e;
            data_hi   <= ({16'b0, f_pl} + {16'b0, f_len}) * f_e;
            sstep_b   <= f_sstep * f_e;
            dstride   <= f_dstr;
            srow      <= {16'b0, f_sram} * f_e;
            drow      <= f_dram;
        end else if (row_end) begin
            srow <= srow + sstep_b;
            if (is_data) drow <= drow + dstride;
        end
    end
endmodule
