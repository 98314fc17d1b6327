// bb_requant: the requantize datapath for R pixels x C lanes per cycle (docs/isa.md `requant`).
//
// Per lane, in int64 two's complement with wrap-around: v = acc * mul + bias (+ u_r * rmul with the
// residual level u_r read from `rk` INP plane words), r = round_shift(v, shift) = (v + 2^(shift-1)) >>> shift
// (v when shift = 0; isa/rounding.py), then either u = clamp(r, lo, hi) packed as `kout` plane words with
// the lane's bit at position slice*C + l (other bits 0; the caller writes only that slice), or the
// int32-saturated r for ACC. Registered on `en`: results are valid the next cycle.
`timescale 1ns/1ps
module bb_requant #(
    parameter R   = 2,
    parameter C   = 4,
    parameter W   = 64,
    parameter NA  = 8,   // planes i < NA of row r on the `res_words` bus, at [(r*NA+i)*W +: W] (INP ports)
    parameter NX  = 1    // planes i >= NA on `res_xwords`, at [(r*NX+i-NA)*W +: W] (INP plane read group)
) (
    input  wire              clk,
    input  wire              en,
    input  wire [R*C*32-1:0] acc,
    input  wire [C*32-1:0]   mul,
    input  wire [C*32-1:0]   rmul,
    input  wire [C*64-1:0]   bias,
    input  wire              res,
    input  wire [3:0]        rk,
    input  wire [R*NA*W-1:0] res_words,
    input  wire [R*NX*W-1:0] res_xwords,
    input  wire [3:0]        slice,
    input  wire [5:0]        shift,
    input  wire [7:0]        lo,
    input  wire [7:0]        hi,
    output reg  [R*8*W-1:0]  out_words,   // row r, plane i at [(r*8+i)*W +: W]
    output reg  [R*C*32-1:0] acc_out
);
    integer r, l, i;
    reg signed [63:0] v, ur, rs, cl;
    reg [63:0] half;
    reg [7:0]  u;
    reg [31:0] bitpos;
    reg        pb;
    always @(posedge clk) begin
        if (en) begin
            out_words <= 0;
            half = (shift == 6'd0) ? 64'd0 : (64'd1 << (shift - 6'd1));
            for (r = 0; r < R; r = r + 1) begin
                for (l = 0; l < C; l = l + 1) begin
                    bitpos = slice * C + l;
                    v = $signed(acc[(r*C+l)*32 +: 32]) * $signed(mul[l*32 +: 32]) + $signed(bias[l*64 +: 64]);
                    if (res) begin
                        ur = 64'sd0;
                        for (i = 0; i < 8; i = i + 1) begin
                            pb = (i < NA) ? res_words[(r*NA+i)*W + bitpos]
                                          : res_xwords[(r*NX+(i >= NA ? i-NA : 0))*W + bitpos];
                            if (i < rk) ur = ur | ({63'd0, pb} << i);
                        end
                        v = v + ur * $signed({{32{rmul[l*32+31]}}, rmul[l*32 +: 32]});
                    end
                    rs = (v + $signed(half)) >>> shift;
                    // u = min(max(rs, lo), hi), as written in the ISA
                    cl = (rs < $signed({56'd0, lo})) ? $signed({56'd0, lo}) : rs;
                    u  = (cl > $signed({56'd0, hi})) ? hi : cl[7:0];
                    for (i = 0; i < 8; i = i + 1) out_words[(r*8+i)*W + bitpos] <= u[i];
                    if (rs < -64'sd2147483648)     acc_out[(r*C+l)*32 +: 32] <= 32'h80000000;
                    else if (rs > 64'sd2147483647) acc_out[(r*C+l)*32 +: 32] <= 32'h7fffffff;
                    else                           acc_out[(r*C+l)*32 +: 32] <= rs[31:0];
                end
            end
        end
    end
endmodule
