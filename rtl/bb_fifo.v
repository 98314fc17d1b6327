// bb_fifo: a unit's instruction queue (DEPTH entries of WIDTH bits, first-word-fall-through).
// `head` shows the oldest entry while `count` > 0. A push and a pop may happen in the same cycle; the
// caller only pushes when count - pop < DEPTH (a slot freed at cycle t takes a dispatch at t).
`timescale 1ns/1ps
module bb_fifo #(
    parameter WIDTH = 8,
    parameter DEPTH = 4,
    parameter CW    = 4   // width of `count`, must hold DEPTH
) (
    input  wire             clk,
    input  wire             rst,
    input  wire             push,
    input  wire [WIDTH-1:0] push_data,
    input  wire             pop,
    output wire [WIDTH-1:0] head,
    output reg  [CW-1:0]    count
);
    localparam PW = (DEPTH > 1) ? $clog2(DEPTH) : 1;

    reg [WIDTH-1:0] mem [0:DEPTH-1];
    reg [PW-1:0]    rd_ptr;
    reg [PW-1:0]    wr_ptr;

    assign head = mem[rd_ptr];

    function [PW-1:0] inc;
        input [PW-1:0] p;
        begin
            inc = ({1'b0, p} == DEPTH - 1) ? {PW{1'b0}} : p + 1'b1;
        end
    endfunction

    always @(posedge clk) begin
        if (rst) begin
            rd_ptr <= {PW{1'b0}};
            wr_ptr <= {PW{1'b0}};
            count  <= {CW{1'b0}};
        end else begin
            if (push) begin
                mem[wr_ptr] <= push_data;
                wr_ptr      <= inc(wr_ptr);
            end
            if (pop) rd_ptr <= inc(rd_ptr);
            count <= count + {{(CW-1){1'b0}}, push} - {{(CW-1){1'b0}}, pop};
        end
    end
endmodule
