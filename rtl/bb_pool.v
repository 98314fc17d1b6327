// bb_pool: max / sum pooling of K-bit levels for R output pixels x C lanes (docs/isa.md `pool`).
//
// Each cycle with `en` reads one window position: the level of lane l of row r is the k-bit number whose
// bit i is bit slice*C + l of plane word i. `run` keeps the running max (mode=max) or sum (mode=sum); on
// `first` it restarts from the current level. With `fin` (the window's last position) the final value is
// also registered as packed plane words (`out_words`, lane bit at slice*C + l, other bits 0) and as
// int32 ACC lanes (`acc_out`), ready to be written the next cycle.
`timescale 1ns/1ps
`include "bb_automatic.vh"
module bb_pool #(
    parameter R   = 2,
    parameter C   = 4,
    parameter W   = 64,
    parameter NA  = 8,   // planes i < NA of row r on the `words` bus, at [(r*NA+i)*W +: W] (INP ports)
    parameter NX  = 1    // planes i >= NA on `xwords`, at [(r*NX+i-NA)*W +: W] (INP plane read group)
) (
    input  wire              clk,
    input  wire              en,
    input  wire              first,
    input  wire              fin,
    input  wire              mode,       // 0 max, 1 sum
    input  wire [3:0]        k,
    input  wire [3:0]        slice,
    input  wire [R*NA*W-1:0] words,
    input  wire [R*NX*W-1:0] xwords,
    output reg  [R*8*W-1:0]  out_words,
    output reg  [R*C*32-1:0] acc_out
);
    `BB_REGS reg [31:0] run [0:R*C-1];

    integer r, l, i;
    reg [31:0] lvl, nv, bitpos;
    reg        pb;
    always @(posedge clk) begin
        if (en) begin
            if (fin) out_words <= 0;
            for (r = 0; r < R; r = r + 1) begin
                for (l = 0; l < C; l = l + 1) begin
                    bitpos = slice * C + l;
                    lvl = 32'd0;
                    for (i = 0; i < 8; i = i + 1) begin
                        pb = (i < NA) ? words[(r*NA+i)*W + bitpos] : xwords[(r*NX+(i >= NA ? i-NA : 0))*W + bitpos];
                        if (i < k) lvl = lvl | ({31'd0, pb} << i);
                    end
                    if (first)     nv = lvl;
                    else if (mode) nv = run[r*C+l] + lvl;
                    else           nv = (lvl > run[r*C+l]) ? lvl : run[r*C+l];
                    run[r*C+l] <= nv;
                    if (fin) begin
                        for (i = 0; i < 8; i = i + 1) out_words[(r*8+i)*W + bitpos] <= nv[i];
                        acc_out[(r*C+l)*32 +: 32] <= nv;
                    end
                end
            end
        end
    end
endmodule
