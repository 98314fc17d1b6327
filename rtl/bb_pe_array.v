// bb_pe_array: R x C processing elements, each doing P binary branches of W-bit xnor-popcount per cycle.
//
// PE (r, l) holds a 32-bit accumulator for output pixel row r and lane l. In a cycle with `en` it adds,
// for every valid branch q < P, coef * (W - 2 * popcount(a[r][q] XOR w[q][l])) where coef = 2^shift[q]
// is the branch's plane coefficient (2^(i+j), or 2^i for ternary weights); int32 arithmetic wraps. On
// `first` the accumulator starts from `init` (the old ACC value, when `use_init`) or 0 instead of its own
// value. Operands: activation plane word q of row r is a[(r*NPR + q)*W +: W] (the INP read ports),
// weight entry q is w[q*C*W +: C*W] with lane l at [l*W +: W] (the WGT read ports).
`timescale 1ns/1ps
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
    // One bb_pe per (row, lane), so every operand slice has a constant position (Verilator reads whole words
    // instead of shifting wide vectors by a run-time offset) and synthesis maps one PE once, not R x C
    // copies (docs/rtl.md, "Synthesis"). A PE's accumulator is its own register; `sum` only wires them.
    genvar gr, gl, gq;
    generate
        for (gr = 0; gr < R; gr = gr + 1) begin : row
            for (gl = 0; gl < C; gl = gl + 1) begin : pe
                wire [P*W-1:0] wl;   // lane gl's weight word of each branch
                for (gq = 0; gq < P; gq = gq + 1) begin : br
                    assign wl[gq*W +: W] = w[(gq*C+gl)*W +: W];
                end
                bb_pe #(.W(W), .P(P)) u (
                    .clk(clk), .en(en), .first(first), .use_init(use_init), .init(init[(gr*C+gl)*32 +: 32]),
                    .a(a[gr*NPR*W +: P*W]), .w(wl), .shift(shift), .bvalid(bvalid), .acc(sum[(gr*C+gl)*32 +: 32])
                );
            end
        end
    endgenerate
endmodule
