// bb_dma_seq: the beat/row/tail sequencer both DMA engines share (bb_load, bb_store).
//
// `start` (while idle) raises the DRAM port request. From the grant cycle g it walks `rows_in` rows of
// `beats_in` beats, each row followed by DMA_ROW_OVERHEAD idle cycles, then DRAM_LATENCY tail cycles;
// `last` is high in the final tail cycle, g + L + rows * (beats + O) - 1 (simulator/timing.py load_hold,
// store_hold). The engines own the addresses and byte lanes: they advance them on `row_end` and read
// `beat`/`row` for the current position; `beat_on` marks the cycles that move data.
`timescale 1ns/1ps
module bb_dma_seq #(
    parameter DRAM_LATENCY     = 8,
    parameter DMA_ROW_OVERHEAD = 1
) (
    input  wire        clk,
    input  wire        rst,
    input  wire        start,
    input  wire [31:0] rows_in,
    input  wire [31:0] beats_in,
    output wire        idle,
    output reg         req,
    input  wire        gnt,
    output wire        active,
    output wire        beat_on,
    output reg  [31:0] beat,
    output reg  [31:0] row,
    output wire        row_end,
    output wire        last
);
    localparam S_IDLE = 2'd0, S_REQ = 2'd1, S_XFER = 2'd2, S_TAIL = 2'd3;

    reg [1:0]  st;
    reg [31:0] rows, beats;
    reg [31:0] ovh;   // overhead cycles left in the current row
    reg        in_ovh;
    reg [31:0] tail;  // latency cycles left

    assign idle    = st == S_IDLE;
    assign active  = (st == S_XFER) || (st == S_REQ && gnt);
    assign beat_on = active && !in_ovh;
    assign last    = (st == S_TAIL) && (tail == 32'd0);
    // end of the current row: its last beat when there is no overhead, else its last overhead cycle
    assign row_end = active && (in_ovh ? (ovh == 32'd1) : (beat == beats - 1 && DMA_ROW_OVERHEAD == 0));

    always @(posedge clk) begin
        if (rst) begin
            st  <= S_IDLE;
            req <= 1'b0;
        end else begin
            case (st)
                S_IDLE: if (start) begin
                    st     <= S_REQ;
                    req    <= 1'b1;
                    rows   <= rows_in;
                    row    <= 32'd0;
                    beats  <= beats_in;
                    beat   <= 32'd0;
                    in_ovh <= 1'b0;
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
                        row <= row + 1'b1;
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
