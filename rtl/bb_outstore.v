// bb_outstore: a simulation model of bb_outbuf's NB banks as one store (the OUT buffer).
//
// bb_outbuf scatters the rows' planes onto its banks in every writing cycle (per bank a loop over the rows)
// and STORE reads beats from the banks' port A. This model keeps the banks' storage in one array and each
// bank's port A read register, and writes each row's planes straight to their entries with the same C-bit
// granule mask, so `dr_data` (including entries the last beat did not read) and the activity counters are
// those of bb_outbuf, cycle for cycle; two rows writing one bank in a cycle (never in a correct schedule)
// end the run as bb_outbuf's check does.
//
// The core's Verilator builds use it (`BB_OUT_SHARED`, rtlharness/build.py); Icarus, coverage and synthesis
// keep the banks. `tests/test_rtl_storemodels.py` runs both side by side on random legal accesses.
`timescale 1ns/1ps
module bb_outstore #(
    parameter R      = 2,
    parameter C      = 4,
    parameter NB     = 16,
    parameter DEPTH  = 512,
    parameter EBYTES = 8,
    parameter B      = 8,
    parameter FAW    = 12,
    parameter AW     = 9,
    parameter RAW    = 5,
    parameter WIDTH  = 8 * EBYTES        // derived, not to be overridden
) (
    input  wire                  clk,
    input  wire                  clear,
    input  wire                  dr_en,
    input  wire [FAW-1:0]        dr_addr,
    output wire [8*B-1:0]        dr_data,
    input  wire [R-1:0]          wen,
    input  wire [R*AW-1:0]       wbase,
    input  wire [3:0]            wn,
    input  wire                  wsrc,
    input  wire [WIDTH-1:0]      wmask,
    input  wire [R*8*C-1:0]      wdata0,
    input  wire [R*8*C-1:0]      wdata1
);
    localparam BD = (DEPTH + NB - 1) / NB;              // rows per bank
    localparam NE = (B >= EBYTES) ? B / EBYTES : 1;     // entries a STORE beat reads
    localparam NG = WIDTH / C;                           // write granules per entry

    reg [WIDTH-1:0] mem [0:NB*BD-1];                     // entry `row * NB + bank`, as the banks address it
    reg [WIDTH-1:0] ra [0:NB-1];                         // each bank's port A (STORE) read register
    reg [31:0]      r_e0, r_off;
    // activity counters, named as bb_banks names them (bb_tb reads core.outb.banks.act_*)
    reg [63:0]      act_a_rd, act_a_wr, act_b_rd, act_b_wr;

    wire [31:0] e0  = dr_addr / EBYTES;
    wire [31:0] off = dr_addr % EBYTES;
    // the granule mask as the banks apply it (each C-bit granule enabled by its lowest bit of `wmask`)
    wire [WIDTH-1:0] gmask;
    integer          ng;                                 // granules enabled
    genvar gg;
    generate
        for (gg = 0; gg < NG; gg = gg + 1) begin : gran
            assign gmask[gg*C +: C] = {C{wmask[gg*C]}};
        end
    endgenerate

    integer r, q, i, n;
    reg [31:0]      e;
    reg [8*C-1:0]   pb;
    reg [WIDTH-1:0] plane;
    reg [NB-1:0]    written;
    reg             clash;

    `include "bb_storeslot.vh"   // bb_slot(entry): the store index of an entry

    initial begin
        for (i = 0; i < NB * BD; i = i + 1) mem[i] = {WIDTH{1'b0}};
        act_a_rd = 64'd0;
        act_a_wr = 64'd0;
        act_b_rd = 64'd0;
        act_b_wr = 64'd0;
    end

    always @(posedge clk) begin
        // STORE's read first (read-before-write, as bb_sram_2p), then `clear`, then the rows' writes
        if (dr_en) begin
            r_e0 <= e0;
            r_off <= off;
            for (r = 0; r < NE; r = r + 1) begin
                e = e0 + r;
                ra[e % NB] <= mem[bb_slot(e)];
            end
            if (!clear) act_a_rd <= act_a_rd + NE * WIDTH;
        end
        if (clear) begin
            for (i = 0; i < NB * BD; i = i + 1) mem[i] = {WIDTH{1'b0}};
            act_a_rd <= 64'd0;
            act_b_wr <= 64'd0;
        end
        if (|wen) begin
            written = {NB{1'b0}};
            clash = 1'b0;
            n = 0;
            for (r = 0; r < R; r = r + 1) begin
                if (wen[r]) begin
                    pb = wsrc ? wdata1[r*8*C +: 8*C] : wdata0[r*8*C +: 8*C];
                    for (q = 0; q < 8; q = q + 1) begin
                        if (q < wn) begin
                            e = wbase[r*AW +: AW] + q;
                            clash = clash | written[e % NB];
                            written[e % NB] = 1'b1;
                            plane = {NG{pb[q*C +: C]}};
                            mem[bb_slot(e)] = (mem[bb_slot(e)] & ~gmask) | (plane & gmask);
                            n = n + 1;
                        end
                    end
                end
            end
            ng = 0;
            for (i = 0; i < NG; i = i + 1) ng = ng + wmask[i*C];
            if (!clear) act_b_wr <= act_b_wr + C * ng * n;
            if (clash) begin
                $display("bb_outbuf: ERROR two rows write one bank in one cycle");
                $finish;
            end
        end
    end

    genvar g;
    generate
        if (B >= EBYTES) begin : rd_whole
            for (g = 0; g < NE; g = g + 1) begin : ent
                assign dr_data[g*WIDTH +: WIDTH] = ra[(r_e0 + g) % NB];
            end
        end else begin : rd_part
            wire [WIDTH-1:0] a = ra[r_e0 % NB];
            assign dr_data = a[8*r_off +: 8*B];
        end
    endgenerate
endmodule
