// bb_pe_array: R x C processing elements, each doing P binary branches of W-bit xnor-popcount per cycle.
//
// PE (r, l) holds a 32-bit accumulator for output pixel row r and lane l. In a cycle with `en` it adds,
// for every valid branch q < P, coef * (W - 2 * popcount(a[r][q] XOR w[q][l])) where coef = 2^shift[q]
// is the branch's plane coefficient (2^(i+j), or 2^i for ternary weights); int32 arithmetic wraps. On
// `first` the accumulator starts from `init` (the old ACC value, when `use_init`) or 0 instead of its own
// value. Operands: activation plane word q of row r is a[(r*NPR + q)*W +: W] (the INP read ports),
// weight entry q is w[q*C*W +: C*W] with lane l at [l*W +: W] (the WGT read ports).
`timescale 1ns/1ps
`include "bb_automatic.vh"
module bb_pe_array #(
    parameter R   = 2,
    parameter C   = 4,
    parameter W   = 64,
    parameter P   = 1,
    parameter NPR = 1    // activation words per row on the `a` bus (>= P)
) (
    input  wire               clk,
    input  wire               en,
    input  wire               first,
    input  wire               use_init,
    input  wire [R*C*32-1:0]  init,
    input  wire [R*NPR*W-1:0] a,
    input  wire [P*C*W-1:0]   w,
    input  wire [P*4-1:0]     shift,
    input  wire [P-1:0]       bvalid,
    output wire [R*C*32-1:0]  sum
);
    localparam NW = W / 64;

    // One branch: (W - 2 * popcount(a XOR w)) << shift, in int32. The popcount is an adder tree written as
    // the usual bit-slice arithmetic on 64-bit words.
    function `BB_AUTOMATIC [31:0] branch;
        input [W-1:0] a;
        input [W-1:0] w;
        input [3:0]   sh;
        reg [W-1:0] x;
        reg [63:0]  v;
        reg [31:0]  pc;
        integer n;
        begin
            x = a ^ w;
            pc = 32'd0;
            /*verilator unroll_full*/
            for (n = 0; n < NW; n = n + 1) begin
                v = x[64*n +: 64];
                v = v - ((v >> 1) & 64'h5555555555555555);
                v = (v & 64'h3333333333333333) + ((v >> 2) & 64'h3333333333333333);
                v = (v + (v >> 4)) & 64'h0f0f0f0f0f0f0f0f;
                v = v * 64'h0101010101010101;
                pc = pc + {25'd0, v[62:56]};
            end
            branch = (W - (pc << 1)) << sh;
        end
    endfunction

    // One always block per PE (generate loops), so every operand slice has a constant position: Verilator
    // then reads whole words instead of shifting wide vectors by a run-time offset, which made the array
    // the bulk of the model's per-cycle time. A PE's accumulator is its own register; `sum` only wires
    // them together.
    genvar gr, gl;
    generate
        for (gr = 0; gr < R; gr = gr + 1) begin : row
            for (gl = 0; gl < C; gl = gl + 1) begin : pe
                reg [31:0] acc;
                reg [31:0] t;
                integer q;
                always @(posedge clk) begin
                    if (en) begin
                        if (first) t = use_init ? init[(gr*C+gl)*32 +: 32] : 32'd0;
                        else       t = acc;
                        /*verilator unroll_full*/
                        for (q = 0; q < P; q = q + 1) begin
                            if (bvalid[q]) t = t + branch(a[(gr*NPR+q)*W +: W], w[(q*C+gl)*W +: W], shift[q*4 +: 4]);
                        end
                        acc <= t;
                    end
                end
                assign sum[(gr*C+gl)*32 +: 32] = acc;
            end
        end
    endgenerate
endmodule
