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
    output reg                      req,
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
    localparam S_IDLE = 2'd0, S_REQ = 2'd1, S_XFER = 2'd2, S_TAIL = 2'd3;
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

    reg [1:0]  st;
    reg [1:0]  sel;          // 0 inp, 1 wgt, 2 const
    reg [31:0] rows_t, row;  // SRAM rows in total; current row
    reg [31:0] pt, pt_rows;  // first data row; first row after the data rows
    reg [31:0] beats, beat;  // beats per row; current beat
    reg [31:0] ovh;          // overhead cycles left in the current row
    reg        in_ovh;
    reg [31:0] tail;         // latency cycles left
    reg [31:0] row_bytes, data_lo, data_hi;
    reg [31:0] sstep_b, dstride;
    reg [31:0] srow;         // flat byte address of the current SRAM row
    reg [31:0] drow;         // DRAM address of the current data row

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

    wire        active  = (st == S_XFER) || (st == S_REQ && gnt);
    wire        beat_on = active && !in_ovh;
    wire [31:0] o       = beat << LB;
    wire        is_data = (row >= pt) && (row < pt_rows);
    wire [2*B-1:0] lm   = lanes(o, row_bytes, data_lo, data_hi, is_data);

    assign rd_en   = beat_on;
    assign rd_addr = drow + o - data_lo;
    assign rd_mask = lm[B-1:0];
    assign rd_tag  = {sel, srow[FAW-1:0] + o[FAW-1:0], lm[2*B-1:B]};
    assign last    = (st == S_TAIL) && (tail == 32'd0);

    wire [1:0]     t_sel  = rsp_tag[TAGW-1 -: 2];
    assign dw_en   = rsp_valid ? {t_sel == 2'd2, t_sel == 2'd1, t_sel == 2'd0} : 3'b000;
    assign dw_addr = rsp_tag[B +: FAW];
    assign dw_mask = rsp_tag[B-1:0];
    assign dw_data = rsp_data;

    // end of the current row: last beat without overhead, or last overhead cycle
    wire row_end = active && (in_ovh ? (ovh == 32'd1) : (beat == beats - 1 && DMA_ROW_OVERHEAD == 0));

    always @(posedge clk) begin
        if (rst) begin
            st  <= S_IDLE;
            req <= 1'b0;
        end else begin
            case (st)
                S_IDLE: if (go && w[`BB_OPCODE_LSB +: `BB_OPCODE_W] == `BB_OP_LOAD) begin
                    st        <= S_REQ;
                    req       <= 1'b1;
                    sel       <= (f_buf == `BB_BUF_WGT) ? 2'd1 : (f_buf == `BB_BUF_CONST) ? 2'd2 : 2'd0;
                    rows_t    <= {24'b0, f_pt} + {16'b0, f_rows} + {24'b0, f_pb};
                    row       <= 32'd0;
                    pt        <= {24'b0, f_pt};
                    pt_rows   <= {24'b0, f_pt} + {16'b0, f_rows};
                    beats     <= (f_rowb + B - 1) >> LB;
                    beat      <= 32'd0;
                    in_ovh    <= 1'b0;
                    row_bytes <= f_rowb;
                    data_lo   <= {16'b0, f_pl} * f_e;
                    data_hi   <= ({16'b0, f_pl} + {16'b0, f_len}) * f_e;
                    sstep_b   <= f_sstep * f_e;
                    dstride   <= f_dstr;
                    srow      <= {16'b0, f_sram} * f_e;
                    drow      <= f_dram;
                end
                S_REQ, S_XFER: if (active) begin
                    st  <= S_XFER;
                    req <= 1'b0;
                    if (!in_ovh) begin
                        if (beat == beats - 1) begin
                            beat <= 32'd0;
                            if (DMA_ROW_OVERHEAD != 0) begin
                                in_ovh <= 1'b1;
                                ovh    <= DMA_ROW_OVERHEAD;
                            end
                        end else begin
                            beat <= beat + 1'b1;
                        end
                    end else begin
                        ovh <= ovh - 1'b1;
                        if (ovh == 32'd1) in_ovh <= 1'b0;
                    end
                    if (row_end) begin
                        if (row == rows_t - 1) begin
                            st   <= S_TAIL;
                            tail <= DRAM_LATENCY - 1;
                        end
                        row  <= row + 1'b1;
                        srow <= srow + sstep_b;
                        if (is_data) drow <= drow + dstride;
                    end
                end
                default: begin  // S_TAIL
                    tail <= tail - 1'b1;
                    if (tail == 32'd0) st <= S_IDLE;
                end
            endcase
        end
    end
endmodule
