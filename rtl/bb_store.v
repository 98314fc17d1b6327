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
    output wire                     req,
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

    reg        sel;          // 0 acc, 1 out
    reg        sel_q;        // buffer of the data arriving this cycle
    reg [31:0] row_bytes, sstep_b, dstride, srow, drow;

    wire        start = go && w[`BB_OPCODE_LSB +: `BB_OPCODE_W] == `BB_OP_STORE;
    wire        idle, active, beat_on, row_end;
    wire [31:0] beat, row;
    bb_dma_seq #(.DRAM_LATENCY(DRAM_LATENCY), .DMA_ROW_OVERHEAD(DMA_ROW_OVERHEAD)) seq (
        .clk(clk), .rst(rst), .start(start), .rows_in({16'b0, f_rows}), .beats_in((f_rowb + B - 1) >> LB),
        .idle(idle), .req(req), .gnt(gnt), .active(active), .beat_on(beat_on), .beat(beat), .row(row),
        .row_end(row_end), .last(last)
    );

    wire [31:0] o       = beat << LB;
    wire [31:0] n_end   = (row_bytes - o > B) ? B : row_bytes - o;
    wire [B:0]  m_end   = ({{B{1'b0}}, 1'b1} << n_end) - 1'b1;

    assign dr_en   = beat_on ? (sel ? 2'b10 : 2'b01) : 2'b00;
    assign dr_addr = srow[FAW-1:0] + o[FAW-1:0];
    assign wr_data = sel_q ? out_data : acc_data;

    always @(posedge clk) begin
        if (rst) begin
            wr_en <= 1'b0;
        end else begin
            wr_en   <= beat_on;
            wr_addr <= drow + o;
            wr_mask <= m_end[B-1:0];
            sel_q   <= sel;
        end
        if (start && idle) begin
            sel       <= (f_buf == `BB_BUF_OUT);
            row_bytes <= f_rowb;
            sstep_b   <= f_sstep * f_e;
            dstride   <= f_dstr;
            srow      <= {16'b0, f_sram} * f_e;
            drow      <= f_dram;
        end else if (row_end) begin
            srow <= srow + sstep_b;
            drow <= drow + dstride;
        end
    end
endmodule
