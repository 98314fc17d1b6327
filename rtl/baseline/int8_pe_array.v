// int8_pe_array: the conventional baseline of docs/cost.md -- R x C processing elements, each a dot product
// of N signed int8 pairs per cycle (N int8 multipliers, an adder tree) into a 32-bit accumulator.
//
// Same array shape and operand buses as bb_pe_array (R pixel rows x C output-channel lanes; activations per
// row, weights per lane, `first`/`use_init`/`init` to start from ACC), with N*8-bit words instead of the
// binary array's W-bit plane words: N = W/8 carries as many operand bits per word. Row r's activation
// element n is a[(r*N + n)*8 +: 8], lane l's weight element n is w[(l*N + n)*8 +: 8]. int32 wraps.
// Synthesized with the same Yosys flow as the binary array (bench/cost.py) for the area per MAC.
`timescale 1ns/1ps
module int8_pe_array #(
    parameter R = 2,
    parameter C = 4,
    parameter N = 8
) (
    input  wire               clk,
    input  wire               en,
    input  wire               first,
    input  wire               use_init,
    input  wire [R*C*32-1:0]  init,
    input  wire [R*N*8-1:0]   a,
    input  wire [C*N*8-1:0]   w,
    output wire [R*C*32-1:0]  sum
);
    genvar gr, gl;
    generate
        for (gr = 0; gr < R; gr = gr + 1) begin : row
            for (gl = 0; gl < C; gl = gl + 1) begin : pe
                reg [31:0] acc;
                reg [31:0] t;
                reg signed [15:0] p;
                integer n;
                always @(posedge clk) begin
                    if (en) begin
                        if (first) t = use_init ? init[(gr*C+gl)*32 +: 32] : 32'd0;
                        else       t = acc;
                        for (n = 0; n < N; n = n + 1) begin
                            p = $signed(a[(gr*N+n)*8 +: 8]) * $signed(w[(gl*N+n)*8 +: 8]);
                            t = t + {{16{p[15]}}, p};
                        end
                        acc <= t;
                    end
                end
                assign sum[(gr*C+gl)*32 +: 32] = acc;
            end
        end
    endgenerate
endmodule
