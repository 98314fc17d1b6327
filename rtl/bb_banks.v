// bb_banks: one on-chip buffer of DEPTH entries x EBYTES bytes made of NB bb_sram_2p banks, entry e in bank
// e % NB at row e / NB (low-order interleaving: consecutive entries are in different banks).
//
// Port A of every bank belongs to the DMA engines: a beat of B bytes at a flat byte address (entry *
// EBYTES + byte), written by LOAD (`dw_*`, per-byte mask) or read by STORE (`dr_*`, data registered at the
// end of the `dr_en` cycle and held until the next read). A beat starts on a multiple of min(B, EBYTES)
// bytes (bb_load/bb_store walk rows from entry-aligned addresses in steps of B), so it covers B/EBYTES whole
// entries in as many different banks (B >= EBYTES; needs NB >= B/EBYTES) or B bytes of one entry.
// A buffer is written by LOAD or read by STORE, never both, so the two never meet on port A; DW/DR/B_RD/B_WR
// tell the banks which of their ports' reads and writes the buffer uses (bb_sram_2p).
// Port B of every bank is passed through (`b_*`, bank k at index k): the buffer's compute-side module
// routes the compute unit's accesses onto the banks, conflict-free by construction (docs/rtl.md,
// "Memory system").
`timescale 1ns/1ps
`include "bb_automatic.vh"
module bb_banks #(
    parameter NB     = 8,
    parameter DEPTH  = 1024,
    parameter EBYTES = 8,
    parameter B      = 8,
    parameter GB     = 64,               // port B write granule (bits)
    parameter FAW    = 13,               // flat byte address bits ($clog2(DEPTH) + $clog2(EBYTES))
    parameter RAW    = 7,                // bank row address bits ($clog2(ceil(DEPTH / NB)), at least 1)
    parameter DW     = 1,                // 0: the buffer is never written by LOAD (dw_en tied to 0)
    parameter DR     = 1,                // 0: the buffer is never read by STORE (dr_en tied to 0)
    parameter B_RD   = 1,                // 0: port B never reads (b_we tied to 1 wherever b_en is set)
    parameter B_WR   = 1,                // 0: port B never writes (b_we tied to 0)
    parameter WIDTH  = 8 * EBYTES        // derived, not to be overridden
) (
    input  wire                      clk,
    input  wire                      clear,
    input  wire                      dw_en,
    input  wire [FAW-1:0]            dw_addr,
    input  wire [B-1:0]              dw_mask,
    input  wire [8*B-1:0]            dw_data,
    input  wire                      dr_en,
    input  wire [FAW-1:0]            dr_addr,
    output wire [8*B-1:0]            dr_data,
    input  wire [NB-1:0]             b_en,
    input  wire [NB-1:0]             b_we,
    input  wire [NB*RAW-1:0]         b_addr,
    input  wire [NB*(WIDTH/GB)-1:0]  b_mask,
    input  wire [NB*WIDTH-1:0]       b_wdata,
    output wire [NB*WIDTH-1:0]       b_rdata
);
    localparam NE = (B >= EBYTES) ? B / EBYTES : 1;   // entries a beat touches

    wire [FAW-1:0] fa  = dw_en ? dw_addr : dr_addr;
    wire [31:0]    e0  = fa / EBYTES;                  // first entry of the beat
    wire [31:0]    off = fa % EBYTES;                  // byte offset in it (B < EBYTES only)
    wire [NB*WIDTH-1:0] a_rdata;
    localparam REP = (B < EBYTES) ? EBYTES / B : 1;
    wire [EBYTES-1:0]   p_mask;                        // B < EBYTES: the beat's mask and data, placed
    wire [WIDTH-1:0]    p_wdata;

    // the entry and byte offset of the last read, to pick its bytes out of the banks' read data
    reg [31:0] r_e0, r_off;
    always @(posedge clk) begin
        if (dr_en) begin
            r_e0  <= e0;
            r_off <= off;
        end
    end

    genvar k;
    generate
        // a beat narrower than an entry: the same mask and data for whichever bank holds its entry
        if (B < EBYTES) begin : narrow
            wire [EBYTES+B-1:0] t = {{EBYTES{1'b0}}, dw_mask} << off;
            assign p_mask  = t[EBYTES-1:0];
            assign p_wdata = {REP{dw_data}};
        end else begin : wide
            assign p_mask  = {EBYTES{1'b0}};
            assign p_wdata = {WIDTH{1'b0}};
        end
        for (k = 0; k < NB; k = k + 1) begin : bank
            // the beat's entry j falls in bank k, at bank row `row`; evaluated only in cycles with a beat
            reg [31:0]        j, row;
            reg               a_on;
            wire [EBYTES-1:0] a_mask;
            wire [WIDTH-1:0]  a_wdata;
            always @* begin
                j = 32'd0;
                row = 32'd0;
                a_on = 1'b0;
                `BB_EVAL_WHEN(dw_en || dr_en) begin
                    j = (k + NB - e0 % NB) % NB;
                    row = (e0 + j) / NB;
                    a_on = (dw_en || dr_en) && j < NE;
                end
            end
            if (B >= EBYTES) begin : whole
                assign a_mask  = dw_mask[(j % NE)*EBYTES +: EBYTES];
                assign a_wdata = dw_data[(j % NE)*WIDTH +: WIDTH];
            end else begin : part
                assign a_mask  = p_mask;
                assign a_wdata = p_wdata;
            end
            bb_sram_2p #(.DEPTH((DEPTH + NB - 1) / NB), .WIDTH(WIDTH), .AW(RAW), .GA(8), .GB(GB), .A_RD(DR), .A_WR(DW),
                         .B_RD(B_RD), .B_WR(B_WR)) ram (
                .clk(clk), .clear(clear),
                .a_en(a_on), .a_we(dw_en), .a_addr(row[RAW-1:0]), .a_mask(a_mask),
                .a_wdata(a_wdata), .a_rdata(a_rdata[k*WIDTH +: WIDTH]),
                .b_en(b_en[k]), .b_we(b_we[k]), .b_addr(b_addr[k*RAW +: RAW]),
                .b_mask(b_mask[k*(WIDTH/GB) +: WIDTH/GB]), .b_wdata(b_wdata[k*WIDTH +: WIDTH]),
                .b_rdata(b_rdata[k*WIDTH +: WIDTH])
            );
        end
        if (B >= EBYTES) begin : rd_whole
            for (k = 0; k < NE; k = k + 1) begin : ent
                assign dr_data[k*WIDTH +: WIDTH] = a_rdata[((r_e0 + k) % NB)*WIDTH +: WIDTH];
            end
        end else begin : rd_part
            assign dr_data = a_rdata[(r_e0 % NB)*WIDTH + 8*r_off +: 8*B];
        end
    endgenerate

`ifndef SYNTHESIS
    // Activity counters (simulation only; bb_tb sums them per buffer and per unit for the harness, which
    // checks them against simulator/activity.py): bits through the banks' ports since the last `clear`.
    // A read moves the whole bank width; a write only the bits its mask enables. Port A: a DMA write
    // enables the beat's NE banks with the beat's lane mask split over them (every lane in exactly one
    // bank), so it writes 8 bits per set lane of `dw_mask`; a DMA read reads NE whole entries.
    // (Icarus 11's $countones miscounts now and then, so it gets a plain loop; Verilator's is exact and fast.)
    reg [63:0] act_a_rd, act_a_wr, act_b_rd, act_b_wr;
    reg [63:0] act_bw;
    integer    act_k;
`ifdef VERILATOR
    `define BB_ONES_B(v) $countones(v)
    `define BB_ONES_NB(v) $countones(v)
    `define BB_ONES_G(v) $countones(v)
`else
    `define BB_ONES_B(v) ones_b(v)
    `define BB_ONES_NB(v) ones_nb(v)
    `define BB_ONES_G(v) ones_g(v)
    function [31:0] ones_b;
        input [B-1:0] v;
        integer i;
        begin
            ones_b = 0;
            for (i = 0; i < B; i = i + 1) ones_b = ones_b + v[i];
        end
    endfunction
    function [31:0] ones_nb;
        input [NB-1:0] v;
        integer i;
        begin
            ones_nb = 0;
            for (i = 0; i < NB; i = i + 1) ones_nb = ones_nb + v[i];
        end
    endfunction
    function [31:0] ones_g;
        input [WIDTH/GB-1:0] v;
        integer i;
        begin
            ones_g = 0;
            for (i = 0; i < WIDTH/GB; i = i + 1) ones_g = ones_g + v[i];
        end
    endfunction
`endif
    initial begin
        act_a_rd = 64'd0;
        act_a_wr = 64'd0;
        act_b_rd = 64'd0;
        act_b_wr = 64'd0;
    end
    always @(posedge clk) begin
        if (clear) begin
            act_a_rd <= 64'd0;
            act_a_wr <= 64'd0;
            act_b_rd <= 64'd0;
            act_b_wr <= 64'd0;
        end else begin
            if (dw_en) act_a_wr <= act_a_wr + 64'd8 * `BB_ONES_B(dw_mask);
            else if (dr_en) act_a_rd <= act_a_rd + NE * WIDTH;
            if (|b_en) begin
                act_b_rd <= act_b_rd + WIDTH * `BB_ONES_NB(b_en & ~b_we);
                if (|(b_en & b_we)) begin
                    act_bw = 64'd0;
                    for (act_k = 0; act_k < NB; act_k = act_k + 1) begin
                        if (b_en[act_k] && b_we[act_k])
                            act_bw = act_bw + GB * `BB_ONES_G(b_mask[act_k*(WIDTH/GB) +: WIDTH/GB]);
                    end
                    act_b_wr <= act_b_wr + act_bw;
                end
            end
        end
    end
`undef BB_ONES_B
`undef BB_ONES_NB
`undef BB_ONES_G
`endif
endmodule
