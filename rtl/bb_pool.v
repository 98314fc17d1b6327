// bb_pool: max / sum pooling of K-bit levels for R output pixels x C lanes (docs/isa.md `pool`).
//
// Each cycle with `en` reads one window position: the level of lane l of row r is the k-bit number whose
// bit i is bit slice*C + l of row r's plane word i. `run` keeps the running max (mode=max) or sum
// (mode=sum); on `first` it restarts from the current level. With `fin` (the window's last position) the
// final value is also registered as int32 ACC lanes (`acc_out`) and, for OUT, its low 8 bits in plane order
// (`out_bits`, bit (r*8 + i)*C + l: bit i of lane l of row r), ready to be written the next cycle; bb_outbuf
// places them in the instruction's slice. All logic sits behind `en`: idle cycles evaluate nothing.
`timescale 1ns/1ps
`include "bb_automatic.vh"
module bb_pool #(
    parameter R   = 2,
    parameter C   = 4,
    parameter W   = 64
) (
    input  wire              clk,
    input  wire              en,
    input  wire              first,
    input  wire              fin,
    input  wire              mode,       // 0 max, 1 sum
    input  wire [3:0]        k,
    input  wire [3:0]        slice,
    input  wire [R*8*W-1:0]  words,      // row r, plane i at [(r*8+i)*W +: W]
    output wire [R*8*C-1:0]  out_bits,
    output wire [R*C*32-1:0] acc_out
);
`include "bb_planes.vh"
    genvar gr;
    generate
        for (gr = 0; gr < R; gr = gr + 1) begin : row
            reg [C*32-1:0] run;   // lane l's running max or sum at [l*32 +: 32]
            reg [C*32-1:0] fv;    // final values (registered with `fin`)
            reg [8*C-1:0]  fb;    // bit i*C + l: bit i of lane l's final value
            reg [8*C-1:0]  pb;
            reg [31:0]     lvl, nv;
            integer l, i;
            always @(posedge clk) begin
                if (en) begin
                    pb = bb_cut(words[gr*8*W +: 8*W], slice);
                    for (l = 0; l < C; l = l + 1) begin
                        lvl = 32'd0;
                        for (i = 0; i < 8; i = i + 1) lvl[i] = pb[i*C + l] && (i < k);
                        if (first)     nv = lvl;
                        else if (mode) nv = run[l*32 +: 32] + lvl;
                        else           nv = (lvl > run[l*32 +: 32]) ? lvl : run[l*32 +: 32];
                        run[l*32 +: 32] <= nv;
                        if (fin) begin
                            fv[l*32 +: 32] <= nv;
                            for (i = 0; i < 8; i = i + 1) fb[i*C + l] <= nv[i];
                        end
                    end
                end
            end
            assign acc_out[gr*C*32 +: C*32] = fv;
            assign out_bits[gr*8*C +: 8*C] = fb;
        end
    endgenerate
endmodule
