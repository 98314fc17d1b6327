// bb_pe: one processing element of bb_pe_array: P binary branches of W-bit xnor-popcount into a 32-bit
// accumulator.
//
// In a cycle with `en` it adds, for every valid branch q < P (`bvalid[q]`), coef * (W - 2 * popcount(a_q XOR
// w_q)) where coef = 2^shift[q] (int32 arithmetic wraps); on `first` the sum starts from `init` (when
// `use_init`) or 0 instead of `acc`. Operands: branch q's activation word a_q = a[q*W +: W], weight word
// w_q = w[q*W +: W]. bb_pe_array instantiates it R x C times, so synthesis maps one PE once per parameter
// set (docs/rtl.md, "Synthesis").
`timescale 1ns/1ps
`include "bb_automatic.vh"
module bb_pe #(
    parameter W = 64,
    parameter P = 1
) (
    input  wire            clk,
    input  wire            en,
    input  wire            first,
    input  wire            use_init,
    input  wire [31:0]     init,
    input  wire [P*W-1:0]  a,
    input  wire [P*W-1:0]  w,
    input  wire [P*4-1:0]  shift,
    input  wire [P-1:0]    bvalid,
    output reg  [31:0]     acc
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

    reg [31:0] t;
    integer q;
    always @(posedge clk) begin
        if (en) begin
            if (first) t = use_init ? init : 32'd0;
            else       t = acc;
            /*verilator unroll_full*/
            for (q = 0; q < P; q = q + 1) begin
                if (bvalid[q]) t = t + branch(a[q*W +: W], w[q*W +: W], shift[q*4 +: 4]);
            end
            acc <= t;
        end
    end
endmodule
