// bb_outscatter: where the OUT buffer's rows write (bb_outbuf): for each of its NB banks, whether it writes,
// at which bank row, and the C-lane plane it takes, replicated into every C-lane slice of the W-bit word.
//
// Row r (`wen[r]`) writes planes q < n (`wn`) of one pixel at entries wbase[r] + q; entry e is in bank e % NB
// at bank row e / NB. So bank k takes plane q of row r exactly when row r's run starts in bank (k - q) mod NB,
// and then at bank row wbase[r] / NB, one more when the run wraps past the last bank (q > k). Each row's start
// bank is decoded once (`at`), so every bank/plane/row index below is a constant: the scatter is AND-OR trees,
// no arithmetic per bank. A row reaches a bank with at most one plane (n <= 8 <= NB). Two rows on one bank
// (`clash`) never happen in a correct schedule (the compute unit's write groups, docs/timing.md section 4.1);
// bb_outbuf stops a simulation that makes one. The later row wins, as its data is the last one written.
// Data: rows x 8 planes x C lanes from REQUANT (`wsrc` 0) or POOL (1), bit (r*8 + q)*C + l.
`timescale 1ns/1ps
module bb_outscatter #(
    parameter R     = 2,
    parameter C     = 4,
    parameter NB    = 16,
    parameter AW    = 9,
    parameter RAW   = 5,
    parameter WIDTH = 64
) (
    input  wire [R-1:0]         wen,
    input  wire [R*AW-1:0]      wbase,
    input  wire [3:0]           wn,
    input  wire                 wsrc,
    input  wire [R*8*C-1:0]     wdata0,
    input  wire [R*8*C-1:0]     wdata1,
    output wire [NB-1:0]        en,
    output wire [NB*RAW-1:0]    row,
    output wire [NB*WIDTH-1:0]  wd,
    output wire                 clash
);
    wire [R*NB-1:0]  at;      // at[r*NB + b]: row r writes, its run starting in bank b
    wire [R*RAW-1:0] brow;    // row r's first bank row, wbase[r] / NB
    wire [R*RAW-1:0] brow1;   // the bank row after it, for the planes past the last bank
    wire [7:0]       pl;      // plane q is written: q < n
    wire [R*8*C-1:0] wdata = wsrc ? wdata1 : wdata0;
    wire [NB-1:0]    hit2;
    assign clash = |hit2;
    genvar g, k;
    generate
        for (g = 0; g < 8; g = g + 1) begin : plane
            assign pl[g] = g < wn;
        end
        for (g = 0; g < R; g = g + 1) begin : wrow
            wire [AW-1:0] base = wbase[g*AW +: AW];
            assign brow[g*RAW +: RAW] = base / NB;
            assign brow1[g*RAW +: RAW] = base / NB + 1;
            assign at[g*NB +: NB] = {{(NB-1){1'b0}}, wen[g]} << (base % NB);
        end
        for (k = 0; k < NB; k = k + 1) begin : bank
            // chains over the rows, entry g after rows 0..g: one of them writes bank k (on), two do (two), and
            // the bank row and plane of the last that does
            wire [R-1:0]       on, two;
            wire [R*RAW-1:0]   rw;
            wire [R*C-1:0]     pv;
            localparam [7:0] WRAP = 8'hFF << (k + 1);   // planes q > k wrap past the last bank
            // Jq: the bank where a run whose plane q lands on bank k starts
            localparam integer J0 = k, J1 = (k + NB - 1) % NB, J2 = (k + NB - 2) % NB, J3 = (k + NB - 3) % NB;
            localparam integer J4 = (k + NB - 4) % NB, J5 = (k + NB - 5) % NB, J6 = (k + NB - 6) % NB;
            localparam integer J7 = (k + NB - 7) % NB;
            for (g = 0; g < R; g = g + 1) begin : from
                // s[q]: plane q of row g lands on bank k (the row's run starts in bank k - q); at most one q
                wire [7:0]   s = pl & {at[g*NB + J7], at[g*NB + J6], at[g*NB + J5], at[g*NB + J4],
                                      at[g*NB + J3], at[g*NB + J2], at[g*NB + J1], at[g*NB + J0]};
                wire         h = |s;
                wire [C-1:0] p = ({C{s[0]}} & wdata[(g*8 + 0)*C +: C]) |
                                 ({C{s[1]}} & wdata[(g*8 + 1)*C +: C]) |
                                 ({C{s[2]}} & wdata[(g*8 + 2)*C +: C]) |
                                 ({C{s[3]}} & wdata[(g*8 + 3)*C +: C]) |
                                 ({C{s[4]}} & wdata[(g*8 + 4)*C +: C]) |
                                 ({C{s[5]}} & wdata[(g*8 + 5)*C +: C]) |
                                 ({C{s[6]}} & wdata[(g*8 + 6)*C +: C]) |
                                 ({C{s[7]}} & wdata[(g*8 + 7)*C +: C]);
                if (g == 0) begin : first
                    assign on[0] = h;
                    assign two[0] = 1'b0;
                    assign rw[0 +: RAW] = !h ? {RAW{1'b0}} : |(s & WRAP) ? brow1[0 +: RAW] : brow[0 +: RAW];
                    assign pv[0 +: C] = p;   // 0 when the row misses the bank
                end else begin : later
                    assign on[g] = on[g-1] | h;
                    assign two[g] = two[g-1] | (on[g-1] & h);
                    assign rw[g*RAW +: RAW] = !h ? rw[(g-1)*RAW +: RAW]
                                            : |(s & WRAP) ? brow1[g*RAW +: RAW] : brow[g*RAW +: RAW];
                    assign pv[g*C +: C] = h ? p : pv[(g-1)*C +: C];
                end
            end
            assign en[k] = on[R-1];
            assign hit2[k] = two[R-1];
            assign row[k*RAW +: RAW] = rw[(R-1)*RAW +: RAW];
            assign wd[k*WIDTH +: WIDTH] = {(WIDTH/C){pv[(R-1)*C +: C]}};
        end
    endgenerate
endmodule
