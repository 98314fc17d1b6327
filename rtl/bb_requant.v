// bb_requant: the requantize datapath for R pixels x C lanes per cycle (docs/isa.md `requant`).
//
// One bb_requant_row per pixel row; the rows' levels come out in plane order (`out_bits`, bit (r*8 + i)*C + l:
// bit i of lane l of row r), and bb_outbuf places them in the instruction's slice.
// Registered on `en`: results are valid the next cycle.
`timescale 1ns/1ps
module bb_requant #(
    parameter R   = 2,
    parameter C   = 4,
    parameter W   = 64
) (
    input  wire              clk,
    input  wire              en,
    input  wire [R*C*32-1:0] acc,
    input  wire [C*32-1:0]   mul,
    input  wire [C*32-1:0]   rmul,
    input  wire [C*64-1:0]   bias,
    input  wire              res,
    input  wire [3:0]        rk,
    input  wire [R*8*W-1:0]  res_words,   // row r, plane i at [(r*8+i)*W +: W]
    input  wire [3:0]        slice,
    input  wire [5:0]        shift,
    input  wire [7:0]        lo,
    input  wire [7:0]        hi,
    output wire [R*8*C-1:0]  out_bits,
    output wire [R*C*32-1:0] acc_out
);
    genvar gr;
    generate
        for (gr = 0; gr < R; gr = gr + 1) begin : row
            bb_requant_row #(.C(C), .W(W)) u_row (
                .clk(clk), .en(en), .acc(acc[gr*C*32 +: C*32]), .mul(mul), .rmul(rmul), .bias(bias), .res(res),
                .rk(rk), .res_words(res_words[gr*8*W +: 8*W]), .slice(slice), .shift(shift), .lo(lo), .hi(hi),
                .ubits(out_bits[gr*8*C +: 8*C]), .sat(acc_out[gr*C*32 +: C*32])
            );
        end
    endgenerate
endmodule
