// bb_requant: the requantize datapath for R pixels x C lanes per cycle (docs/isa.md `requant`).
//
// Per lane (bb_requant_lane), in int64 two's complement with wrap-around: v = acc * mul + bias (+ u_r * rmul
// with the residual level u_r read from `rk` INP plane words), r = round_shift(v, shift) = (v + 2^(shift-1))
// >>> shift (v when shift = 0; isa/rounding.py), then either u = clamp(r, lo, hi) packed as `kout` plane
// words with the lane's bit at position slice*C + l (other bits 0; the caller writes only that slice), or
// the int32-saturated r for ACC. Registered on `en`: results are valid the next cycle.
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
    output wire [R*8*W-1:0]  out_words,   // row r, plane i at [(r*8+i)*W +: W]
    output wire [R*C*32-1:0] acc_out
);
    // Bit positions: lane l of slice s is bit s*C + l of a plane word. The C bits of this cycle's slice are cut
    // out of each plane word once per row and plane (a W-bit shifter), and the results are placed back the
    // same way (a run-time bit index per lane into the R*8*W-bit buses would make Yosys's front end expand
    // one case per position and lane: minutes on `edge`).
    reg  [3:0] r_slice;   // the slice of the registered results
    always @(posedge clk) if (en) r_slice <= slice;

    genvar gr, gl, gi;
    generate
        for (gr = 0; gr < R; gr = gr + 1) begin : row
            wire [8*C-1:0] pbits;   // bit i*C + l: bit slice*C + l of the residual's plane word i
            wire [8*C-1:0] ubits;   // bit i*C + l: bit i of lane l's level
            wire [8*C-1:0] u;       // lane l's level at [l*8 +: 8]
            for (gi = 0; gi < 8; gi = gi + 1) begin : pl
                wire [W-1:0] wd;
                if (gi < NA) begin : a
                    assign wd = res_words[(gr*NA+gi)*W +: W];
                end else begin : x
                    assign wd = res_xwords[(gr*NX+gi-NA)*W +: W];
                end
                assign pbits[gi*C +: C] = wd >> (slice * C);
                assign out_words[(gr*8+gi)*W +: W] = {{(W-C){1'b0}}, ubits[gi*C +: C]} << (r_slice * C);
            end
            // transpose between plane-major (i*C + l) and lane-major (l*8 + i) bit order
            integer ti, tl;
            reg [8*C-1:0] pb, ub;
            always @* begin
                for (ti = 0; ti < 8; ti = ti + 1) begin
                    for (tl = 0; tl < C; tl = tl + 1) begin
                        pb[tl*8 + ti] = pbits[ti*C + tl];
                        ub[ti*C + tl] = u[tl*8 + ti];
                    end
                end
            end
            assign ubits = ub;
            for (gl = 0; gl < C; gl = gl + 1) begin : lane
                bb_requant_lane u_lane (
                    .clk(clk), .en(en), .acc(acc[(gr*C+gl)*32 +: 32]), .mul(mul[gl*32 +: 32]),
                    .rmul(rmul[gl*32 +: 32]), .bias(bias[gl*64 +: 64]), .res(res), .rk(rk), .pb(pb[gl*8 +: 8]),
                    .shift(shift), .lo(lo), .hi(hi), .u(u[gl*8 +: 8]), .sat(acc_out[(gr*C+gl)*32 +: 32])
                );
            end
        end
    endgenerate
endmodule
