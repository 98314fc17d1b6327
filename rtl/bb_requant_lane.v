// bb_requant_lane: the requantize datapath of one lane (one pixel row x one column) of bb_requant.
//
// In int64 two's complement with wrap-around: v = acc * mul + bias (+ u_r * rmul when `res`, u_r the
// residual level whose bit i is pb[i] for i < rk, 0 above), r = round_shift(v, shift) = (v + 2^(shift-1))
// >>> shift (v when shift = 0; isa/rounding.py); registered on `en`: u = clamp(r, lo, hi) and sat, the
// int32-saturated r. The products are computed at their exact widths (a 32 x 32 and a 9 x 32 signed
// multiply, sign-extended), which equal the 64-bit wrapped products of the ISA. bb_requant instantiates it
// R x C times, so synthesis maps one lane once (docs/rtl.md, "Synthesis").
`timescale 1ns/1ps
module bb_requant_lane (
    input  wire        clk,
    input  wire        en,
    input  wire [31:0] acc,
    input  wire [31:0] mul,
    input  wire [31:0] rmul,
    input  wire [63:0] bias,
    input  wire        res,
    input  wire [3:0]  rk,
    input  wire [7:0]  pb,
    input  wire [5:0]  shift,
    input  wire [7:0]  lo,
    input  wire [7:0]  hi,
    output reg  [7:0]  u,
    output reg  [31:0] sat
);
    // |acc * mul| < 2^63 and 0 <= u_r < 256: both products are exact at these widths
    wire signed [63:0] prod  = $signed(acc) * $signed(mul);
    wire        [7:0]  ur;
    wire signed [40:0] rprod = $signed({1'b0, ur}) * $signed(rmul);
    genvar gi;
    generate
        for (gi = 0; gi < 8; gi = gi + 1) begin : lvl
            assign ur[gi] = pb[gi] && (gi < rk);
        end
    endgenerate

    reg signed [63:0] v, rs, cl;
    reg [63:0] half;
    always @(posedge clk) begin
        if (en) begin
            half = (shift == 6'd0) ? 64'd0 : (64'd1 << (shift - 6'd1));
            v = prod + $signed(bias);
            if (res) v = v + {{23{rprod[40]}}, rprod};
            rs = (v + $signed(half)) >>> shift;
            // u = min(max(rs, lo), hi), as written in the ISA
            cl = (rs < $signed({56'd0, lo})) ? $signed({56'd0, lo}) : rs;
            u <= (cl > $signed({56'd0, hi})) ? hi : cl[7:0];
            if (rs < -64'sd2147483648)     sat <= 32'h80000000;
            else if (rs > 64'sd2147483647) sat <= 32'h7fffffff;
            else                           sat <= rs[31:0];
        end
    end
endmodule
