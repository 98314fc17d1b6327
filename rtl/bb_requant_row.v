// bb_requant_row: the requantize datapath of one pixel row (C lanes) of bb_requant.
//
// Per lane l, in int64 two's complement with wrap-around: v = acc * mul + bias (+ u_r * rmul when `res`, u_r
// the residual level whose bit i is bit slice*C + l of plane word i of `res_words` for i < rk, 0 above),
// r = round_shift(v, shift) = (v + 2^(shift-1)) >>> shift (v when shift = 0; isa/rounding.py); registered
// on `en`: the level u = clamp(r, lo, hi) in plane order (`ubits`) and sat, the int32-saturated r. The
// products are computed at their exact widths (a 32 x 32 and a 9 x 32 signed multiply, sign-extended), which
// equal the 64-bit wrapped products of the ISA. All logic sits behind `en`, so a simulator evaluates the
// C lanes' multipliers only in REQUANT cycles; bb_requant instantiates the row R times and synthesis maps
// it once (docs/rtl.md, "Synthesis").
`timescale 1ns/1ps
`include "bb_automatic.vh"
module bb_requant_row #(
    parameter C   = 4,
    parameter W   = 64
) (
    input  wire            clk,
    input  wire            en,
    input  wire [C*32-1:0] acc,
    input  wire [C*32-1:0] mul,
    input  wire [C*32-1:0] rmul,
    input  wire [C*64-1:0] bias,
    input  wire            res,
    input  wire [3:0]      rk,
    input  wire [8*W-1:0]  res_words,   // plane i at [i*W +: W]
    input  wire [3:0]      slice,
    input  wire [5:0]      shift,
    input  wire [7:0]      lo,
    input  wire [7:0]      hi,
    output reg  [8*C-1:0]  ubits,       // bit i*C + l: bit i of lane l's level
    output reg  [C*32-1:0] sat
);
`include "bb_planes.vh"
    reg        [8*C-1:0] pb;
    reg        [7:0]     ur, u;
    reg signed [63:0]    prod, v, rs, cl;
    reg signed [40:0]    rprod;
    reg        [63:0]    half;
    integer l, i;
    always @(posedge clk) begin
        if (en) begin
            pb = bb_cut(res_words, slice);
            half = (shift == 6'd0) ? 64'd0 : (64'd1 << (shift - 6'd1));
            for (l = 0; l < C; l = l + 1) begin
                for (i = 0; i < 8; i = i + 1) ur[i] = pb[i*C + l] && (i < rk);
                // |acc * mul| < 2^63 and 0 <= u_r < 256: both products are exact at these widths
                prod = $signed(acc[l*32 +: 32]) * $signed(mul[l*32 +: 32]);
                rprod = $signed({1'b0, ur}) * $signed(rmul[l*32 +: 32]);
                v = prod + $signed(bias[l*64 +: 64]);
                if (res) v = v + {{23{rprod[40]}}, rprod};
                rs = (v + $signed(half)) >>> shift;
                // u = min(max(rs, lo), hi), as written in the ISA
                cl = (rs < $signed({56'd0, lo})) ? $signed({56'd0, lo}) : rs;
                u = (cl > $signed({56'd0, hi})) ? hi : cl[7:0];
                for (i = 0; i < 8; i = i + 1) ubits[i*C + l] <= u[i];
                if (rs < -64'sd2147483648)     sat[l*32 +: 32] <= 32'h80000000;
                else if (rs > 64'sd2147483647) sat[l*32 +: 32] <= 32'h7fffffff;
                else                           sat[l*32 +: 32] <= rs[31:0];
            end
        end
    end
endmodule
