// bb_winstore: a simulation model of bb_winbuf's COPIES replicated bank sets with ONE store.
//
// bb_winbuf gives INP one copy of its banks per array row (R readers at unrelated addresses, no conflicts).
// The copies always hold the same data: LOAD writes all of them in one beat and `clear` zeroes all of them.
// Simulated as built, that is R times the storage (4 MiB of bank arrays on `edge`, far beyond the caches)
// and R port-A routings per DMA beat. This model keeps one array and gives it COPIES read ports: each copy
// keeps its own NB bank read registers, so `win` (including the stale entries j >= rlen, which show the
// bank's last read) and the activity counts are those of the replicated banks, cycle for cycle.
//
// The whole core's Verilator builds use it (`BB_WINBUF_SHARED`, rtlharness/build.py) for simulation speed;
// Icarus, coverage and synthesis keep the replicated banks. `tests/test_rtl_storemodels.py` runs both side by
// side on random LOAD beats and window reads and compares `win` and the counters in every cycle.
`timescale 1ns/1ps
module bb_winstore #(
    parameter COPIES = 2,
    parameter NB     = 8,
    parameter NWIN   = 8,
    parameter DEPTH  = 1024,
    parameter EBYTES = 8,
    parameter B      = 8,
    parameter FAW    = 13,
    parameter AW     = 10,
    parameter RAW    = 7,
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
    input  wire [3:0]                    rlen,
    output wire [COPIES*NWIN*WIDTH-1:0]  win,
    // activity (bits, since the last `clear`): one copy's DMA writes, and each copy's port-B reads
    output reg  [63:0]                   act_a_wr,
    output wire [COPIES*64-1:0]          act_b_rd
);
    localparam BD = (DEPTH + NB - 1) / NB;              // rows per bank
    localparam NE = (B >= EBYTES) ? B / EBYTES : 1;     // entries a beat touches

    // the store: entry `row * NB + bank`, as the banks address it (row truncated to RAW bits)
    reg [WIDTH-1:0] mem [0:NB*BD-1];
    // bank b's read register of copy c at c*NB + b
    reg [WIDTH-1:0] rd [0:COPIES*NB-1];
    reg [AW-1:0]    r_a0 [0:COPIES-1];
    reg [63:0]      b_rd [0:COPIES-1];

    wire [31:0] e0  = dw_addr / EBYTES;
    wire [31:0] off = dw_addr % EBYTES;

    integer c, j, i, n;
    reg [31:0] e, a0;

    `include "bb_storeslot.vh"   // bb_slot(entry): the store index of an entry

    function [31:0] ones;
        input [B-1:0] v;
        integer k;
        begin
            ones = 0;
            for (k = 0; k < B; k = k + 1) ones = ones + v[k];
        end
    endfunction

    initial begin
        for (i = 0; i < NB * BD; i = i + 1) mem[i] = {WIDTH{1'b0}};
        for (i = 0; i < COPIES * NB; i = i + 1) rd[i] = {WIDTH{1'b0}};
        for (i = 0; i < COPIES; i = i + 1) begin
            r_a0[i] = {AW{1'b0}};
            b_rd[i] = 64'd0;
        end
        act_a_wr = 64'd0;
    end

    // reads first, then writes (blocking, as bb_sram_2p: a read and a write of one entry in a cycle read the
    // old data); reads and the window start registered
    always @(posedge clk) begin
        for (c = 0; c < COPIES; c = c + 1) begin
            if (ren[c]) begin
                a0 = raddr[c*AW +: AW];
                r_a0[c] <= a0[AW-1:0];
                n = 0;
                for (j = 0; j < NWIN; j = j + 1) begin
                    if (j < rlen) begin
                        e = a0 + j;
                        rd[c*NB + e % NB] <= mem[bb_slot(e)];
                        n = n + 1;
                    end
                end
                if (!clear) b_rd[c] <= b_rd[c] + WIDTH * n;
            end
            if (clear) b_rd[c] <= 64'd0;
        end
        if (clear) begin
            for (i = 0; i < NB * BD; i = i + 1) mem[i] = {WIDTH{1'b0}};
            act_a_wr <= 64'd0;
        end else if (dw_en) begin
            act_a_wr <= act_a_wr + 64'd8 * ones(dw_mask);
        end
        if (dw_en) begin
            if (B >= EBYTES) begin
                for (j = 0; j < NE; j = j + 1) begin
                    e = bb_slot(e0 + j);
                    if (&dw_mask[j*EBYTES +: EBYTES]) mem[e] = dw_data[j*WIDTH +: WIDTH];
                    else for (i = 0; i < EBYTES; i = i + 1)
                        if (dw_mask[j*EBYTES + i]) mem[e][8*i +: 8] = dw_data[j*WIDTH + 8*i +: 8];
                end
            end else begin
                e = bb_slot(e0);
                if (&dw_mask) mem[e][8*off +: 8*B] = dw_data;
                else for (i = 0; i < B; i = i + 1)
                    if (dw_mask[i]) mem[e][8*(off + i) +: 8] = dw_data[8*i +: 8];
            end
        end
    end

    genvar gc, gk;
    generate
        for (gc = 0; gc < COPIES; gc = gc + 1) begin : copy
            assign act_b_rd[gc*64 +: 64] = b_rd[gc];
            for (gk = 0; gk < NWIN; gk = gk + 1) begin : ent
                assign win[(gc*NWIN + gk)*WIDTH +: WIDTH] = rd[gc*NB + (r_a0[gc] + gk) % NB];
            end
        end
    endgenerate
endmodule
