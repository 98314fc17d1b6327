// bb_winbuf: a buffer the compute unit reads as windows of consecutive entries (INP, WGT, CONST), built
// from COPIES copies of bb_banks (NB banks each, entry e in bank e % NB).
//
// LOAD writes every copy at once (one DMA beat, port A of each copy's banks); copy c serves one reader on
// port B: when `ren[c]` is set, the `rlen` (<= NWIN) entries raddr[c] .. raddr[c]+rlen-1 are read (NWIN <= NB,
// so they lie in different banks: no conflict) and appear on `win` (copy c, entry j at index c*NWIN + j) at
// the end of the cycle, held until the copy reads again; entries j >= rlen of the window are not read (their
// banks keep older data). A BGEMM reads only the planes its branch pairs use (INP: P, WGT: mbits). The compute unit's reads of one pixel row are
// always such a window: a BGEMM group of branch pairs reads planes i0 .. i0+P-1 of one pixel (at most 8
// planes), WGT planes j of one weight word (j < mbits <= 8), POOL/REQUANT up to 8 planes of a pixel.
// INP has one copy per array row (R readers at unrelated addresses), which costs R times the storage:
// the price of feeding R pixel rows per cycle without bank conflicts (docs/rtl.md, "Memory system").
`timescale 1ns/1ps
module bb_winbuf #(
    parameter COPIES = 1,
    parameter NB     = 8,
    parameter NWIN   = 8,
    parameter DEPTH  = 1024,
    parameter EBYTES = 8,
    parameter B      = 8,
    parameter FAW    = 13,
    parameter AW     = 10,               // entry address bits
    parameter RAW    = 7,                // bank row address bits ($clog2(DEPTH / NB), at least 1)
    parameter WIDTH  = 8 * EBYTES        // derived, not to be overridden
) (
    input  wire                          clk,
    input  wire                          clear,
    input  wire                          dw_en,
    input  wire [FAW-1:0]                dw_addr,
    input  wire [B-1:0]                  dw_mask,
    input  wire [8*B-1:0]                dw_data,
    input  wire [COPIES-1:0]             ren,
    input  wire [COPIES*AW-1:0]          raddr,
    input  wire [3:0]                    rlen,     // window entries read (1 .. NWIN), all copies
    output wire [COPIES*NWIN*WIDTH-1:0]  win
);
    genvar c, k;
    generate
`ifdef BB_WINBUF_SHARED
        // simulation speed (Verilator): the copies hold the same data, so one store with COPIES read ports
        // stands in for them (bb_winstore); each copy's activity counters keep their names for bb_tb
        wire [63:0]           s_act_a_wr;
        wire [COPIES*64-1:0]  s_act_b_rd;
        bb_winstore #(.COPIES(COPIES), .NB(NB), .NWIN(NWIN), .DEPTH(DEPTH), .EBYTES(EBYTES), .B(B), .FAW(FAW),
                      .AW(AW), .RAW(RAW)) store (
            .clk(clk), .clear(clear), .dw_en(dw_en), .dw_addr(dw_addr), .dw_mask(dw_mask), .dw_data(dw_data),
            .ren(ren), .raddr(raddr), .rlen(rlen), .win(win), .act_a_wr(s_act_a_wr), .act_b_rd(s_act_b_rd)
        );
        for (c = 0; c < COPIES; c = c + 1) begin : copy
            if (1) begin : banks
                wire [63:0] act_a_rd = 64'd0;
                wire [63:0] act_a_wr = s_act_a_wr;
                wire [63:0] act_b_rd = s_act_b_rd[c*64 +: 64];
                wire [63:0] act_b_wr = 64'd0;
            end
        end
`else
        for (c = 0; c < COPIES; c = c + 1) begin : copy
            wire [AW-1:0]       a0 = raddr[c*AW +: AW];
            reg  [NB-1:0]       en;
            reg  [NB*RAW-1:0]   row;
            wire [NB*WIDTH-1:0] rdata;
            reg  [AW-1:0]       r_a0;    // window start of the data on `rdata`
            reg  [31:0]         jj;
            integer             b;
            always @(posedge clk) if (ren[c]) r_a0 <= a0;
            // bank b holds window entry jj = (b - a0) mod NB (NWIN <= NB) at row (a0 + jj) / NB; a loop over
            // the banks, so every bit written has a constant position; evaluated only in cycles that read
            always @* begin
                en = {NB{1'b0}};
                row = {NB*RAW{1'b0}};
                jj = 32'd0;
                if (ren[c]) begin
                    /*verilator unroll_full*/
                    for (b = 0; b < NB; b = b + 1) begin
                        jj = (b + NB - a0 % NB) % NB;
                        if (jj < NWIN && jj < rlen) begin
                            en[b] = 1'b1;
                            row[b*RAW +: RAW] = (a0 + jj) / NB;
                        end
                    end
                end
            end
            for (k = 0; k < NWIN; k = k + 1) begin : ent
                assign win[(c*NWIN + k)*WIDTH +: WIDTH] = rdata[((r_a0 + k) % NB)*WIDTH +: WIDTH];
            end
            bb_banks #(.NB(NB), .DEPTH(DEPTH), .EBYTES(EBYTES), .B(B), .GB(WIDTH), .FAW(FAW), .RAW(RAW),
                .DW(1), .DR(0), .B_RD(1), .B_WR(0)) banks (
                .clk(clk), .clear(clear), .dw_en(dw_en), .dw_addr(dw_addr), .dw_mask(dw_mask), .dw_data(dw_data),
                .dr_en(1'b0), .dr_addr({FAW{1'b0}}), .dr_data(),
                .b_en(en), .b_we({NB{1'b0}}), .b_addr(row), .b_mask({NB{1'b1}}), .b_wdata({NB*WIDTH{1'b0}}),
                .b_rdata(rdata)
            );
        end
`endif
    endgenerate
endmodule
