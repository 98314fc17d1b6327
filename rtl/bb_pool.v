// bb_pool: max / sum pooling of K-bit levels for R output pixels x C lanes (docs/isa.md `pool`).
//
// Each cycle with `en` reads one window position: the level of lane l of row r is the k-bit number whose
// bit i is bit slice*C + l of plane word i. `run` keeps the running max (mode=max) or sum (mode=sum); on
// `first` it restarts from the current level. With `fin` (the window's last position) the final value is
// also registered as packed plane words (`out_words`, lane bit at slice*C + l, other bits 0) and as
// int32 ACC lanes (`acc_out`), ready to be written the next cycle.
`timescale 1ns/1ps
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
    output wire [R*8*W-1:0]  out_words,
    output wire [R*C*32-1:0] acc_out
);
    // Bit positions: lane l of slice s is bit s*C + l of a plane word. The C bits of this cycle's slice are cut
    // out of each plane word once per row and plane (a W-bit shifter), and the final values are placed back
    // the same way (a run-time bit index per lane into the R*8*W-bit buses would make Yosys's front end
    // expand one case per position and lane: minutes on `edge`). Each lane's running value is its own
    // register.
    reg  [3:0] f_slice;   // the slice of the registered final values
    always @(posedge clk) if (en && fin) f_slice <= slice;

    genvar gr, gl, gi;
    generate
        for (gr = 0; gr < R; gr = gr + 1) begin : row
            wire [8*C-1:0] pbits;   // bit i*C + l: bit slice*C + l of plane word i
            wire [8*C-1:0] fbits;   // bit i*C + l: bit i of lane l's final value
            for (gi = 0; gi < 8; gi = gi + 1) begin : pl
                wire [W-1:0] wd;
                if (gi < NA) begin : a
                    assign wd = words[(gr*NA+gi)*W +: W];
                end else begin : x
                    assign wd = xwords[(gr*NX+gi-NA)*W +: W];
                end
                assign pbits[gi*C +: C] = wd >> (slice * C);
                assign out_words[(gr*8+gi)*W +: W] = {{(W-C){1'b0}}, fbits[gi*C +: C]} << (f_slice * C);
            end
            for (gl = 0; gl < C; gl = gl + 1) begin : lane
                reg  [31:0] run;   // running max or sum
                reg  [31:0] fv;    // final value (registered with `fin`)
                reg  [31:0] lvl, nv;
                integer i;
                always @(posedge clk) begin
                    if (en) begin
                        lvl = 32'd0;
                        for (i = 0; i < 8; i = i + 1) begin
                            if (i < k) lvl = lvl | ({31'd0, pbits[i*C + gl]} << i);
                        end
                        if (first)     nv = lvl;
                        else if (mode) nv = run + lvl;
                        else           nv = (lvl > run) ? lvl : run;
                        run <= nv;
                        if (fin) fv <= nv;
                    end
                end
                assign acc_out[(gr*C+gl)*32 +: 32] = fv;
            end
            integer fi, fl;
            reg [8*C-1:0] fb;
            always @* begin
                for (fi = 0; fi < 8; fi = fi + 1) begin
                    for (fl = 0; fl < C; fl = fl + 1) fb[fi*C + fl] = acc_out[(gr*C+fl)*32 + fi];
                end
            end
            assign fbits = fb;
        end
    endgenerate
endmodule
