// bb_store: the STORE DMA engine (ACC/OUT -> DRAM; docs/isa.md `store`).
//
// On `go` it latches the instruction and raises a DRAM port request. From the grant cycle g it walks the
// rows: ceil(len*E/B) beats per row, each reading B bytes from the buffer's DMA port (data one cycle
// later) and writing them to DRAM the next cycle, then DMA_ROW_OVERHEAD idle cycles per row, then
// DRAM_LATENCY cycles of write latency. Its last cycle (`last`, which also releases the port) is
// g + hold - 1 with hold = L + rows * (beats + O), simulator/timing.py store_hold.
`timescale 1ns/1ps
`include "bitbranch_isa.vh"
module bb_store #(
    parameter B                = 8,
    parameter DRAM_LATENCY     = 8,
    parameter DMA_ROW_OVERHEAD = 1,
    parameter E_ACC            = 16,
    parameter E_OUT            = 8,
    parameter FAW              = 16
) (
    input  wire                     clk,
    input  wire                     rst,
    input  wire                     go,
    input  wire [`BB_INSN_BITS-1:0] go_word,
    output reg                      req,
    input  wire                     gnt,
    output wire                     last,
    // buffer reads: one-hot {out, acc}
    output wire [1:0]               dr_en,
    output wire [FAW-1:0]           dr_addr,
    input  wire [8*B-1:0]           acc_data,
    input  wire [8*B-1:0]           out_data,
    // DRAM writes
    output reg                      wr_en,
    output reg  [31:0]              wr_addr,
    output reg  [B-1:0]             wr_mask,
    output wire [8*B-1:0]           wr_data
);
    localparam S_IDLE = 2'd0, S_REQ = 2'd1, S_XFER = 2'd2, S_TAIL = 2'd3;
    localparam LB = $clog2(B);

    wire [`BB_INSN_BITS-1:0] w = go_word;
    wire [2:0]  f_buf  = w[`BB_STORE_BUF_MSB:`BB_STORE_BUF_LSB];
    wire [15:0] f_sram = w[`BB_STORE_SRAM_MSB:`BB_STORE_SRAM_LSB];
    wire [31:0] f_dram = w[`BB_STORE_DRAM_MSB:`BB_STORE_DRAM_LSB];
    wire [15:0] f_rows = w[`BB_STORE_ROWS_MSB:`BB_STORE_ROWS_LSB];
    wire [15:0] f_len  = w[`BB_STORE_LEN_MSB:`BB_STORE_LEN_LSB];
    wire [31:0] f_dstr = w[`BB_STORE_DSTRIDE_MSB:`BB_STORE_DSTRIDE_LSB];
    wire [15:0] f_sstr = w[`BB_STORE_SSTRIDE_MSB:`BB_STORE_SSTRIDE_LSB];
    wire [31:0] f_e    = (f_buf == `BB_BUF_ACC) ? E_ACC : E_OUT;
    wire [31:0] f_sstep = (f_sstr != 16'd0) ? {16'b0, f_sstr} : {16'b0, f_len};
    wire [31:0] f_rowb  = {16'b0, f_len} * f_e;

    reg [1:0]  st;
    reg        sel;          // 0 acc, 1 out
    reg        sel_q;        // buffer of the data arriving this cycle
    reg [31:0] rows, row, beats, beat, ovh, tail;
    reg        in_ovh;
    reg [31:0] row_bytes, sstep_b, dstride, srow, drow;

    wire        active  = (st == S_XFER) || (st == S_REQ && gnt);
    wire        beat_on = active && !in_ovh;
    wire [31:0] o       = beat << LB;
    wire [31:0] n_end   = (row_bytes - o > B) ? B : row_bytes - o;
    wire [B:0]  m_end   = ({{B{1'b0}}, 1'b1} << n_end) - 1'b1;

    assign dr_en   = beat_on ? (sel ? 2'b10 : 2'b01) : 2'b00;
    assign dr_addr = srow[FAW-1:0] + o[FAW-1:0];
    assign wr_data = sel_q ? out_data : acc_data;
    assign last    = (st == S_TAIL) && (tail == 32'd0);

    wire row_end = active && (in_ovh ? (ovh == 32'd1) : (beat == beats - 1 && DMA_ROW_OVERHEAD == 0));

    always @(posedge clk) begin
        if (rst) begin
            st    <= S_IDLE;
            req   <= 1'b0;
            wr_en <= 1'b0;
        end else begin
            wr_en   <= beat_on;
            wr_addr <= drow + o;
            wr_mask <= m_end[B-1:0];
            sel_q   <= sel;
            case (st)
                S_IDLE: if (go && w[`BB_OPCODE_LSB +: `BB_OPCODE_W] == `BB_OP_STORE) begin
                    st        <= S_REQ;
                    req       <= 1'b1;
                    sel       <= (f_buf == `BB_BUF_OUT);
                    rows      <= {16'b0, f_rows};
                    row       <= 32'd0;
                    beats     <= (f_rowb + B - 1) >> LB;
                    beat      <= 32'd0;
                    in_ovh    <= 1'b0;
                    row_bytes <= f_rowb;
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
                        if (row == rows - 1) begin
                            st   <= S_TAIL;
                            tail <= DRAM_LATENCY - 1;
                        end
                        row  <= row + 1'b1;
                        srow <= srow + sstep_b;
                        drow <= drow + dstride;
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
