// bb_accstore: a simulation model of bb_accbuf's NB banks as one store (the ACC buffer).
//
// bb_accbuf routes the compute unit's R-row read and write runs onto its banks in every cycle, and the
// banks' read registers are gathered into an NB-entry bus (32 kbit on `edge`) from which each row picks its
// entry. Simulated as built that is ~10 % of the core's time in copies. This model keeps the banks' storage
// in one array and each bank's two read registers (port A: STORE, port B: compute), so `rdata`, `dr_data`
// (including entries not read in the last access, which show the bank's last read) and the activity
// counters are those of bb_accbuf, cycle for cycle; a bank read and written by the compute unit in one cycle
// (never in a correct schedule) ends the run as bb_accbuf's check does.
//
// The core's Verilator builds use it (`BB_ACC_SHARED`, rtlharness/build.py); Icarus, coverage and synthesis
// keep the banks. `tests/test_rtl_storemodels.py` runs both side by side on random legal accesses.
`timescale 1ns/1ps
module bb_accstore #(
    parameter R      = 2,
    parameter NB     = 8,
    parameter DEPTH  = 1024,
    parameter EBYTES = 16,
    parameter B      = 8,
    parameter FAW    = 14,
    parameter AW     = 10,
    parameter RAW    = 7,
    parameter WIDTH  = 8 * EBYTES        // derived, not to be overridden
) (
    input  wire                  clk,
    input  wire                  clear,
    input  wire                  dr_en,
    input  wire [FAW-1:0]        dr_addr,
    output wire [8*B-1:0]        dr_data,
    input  wire [R-1:0]          ren,
    input  wire [AW-1:0]         raddr,
    output wire [R*WIDTH-1:0]    rdata,
    input  wire [R-1:0]          wen,
    input  wire [AW-1:0]         waddr,
    input  wire [1:0]            wsrc,
    input  wire [R*WIDTH-1:0]    wdata0,
    input  wire [R*WIDTH-1:0]    wdata1,
    input  wire [R*WIDTH-1:0]    wdata2
);
    localparam BD = (DEPTH + NB - 1) / NB;              // rows per bank
    localparam NE = (B >= EBYTES) ? B / EBYTES : 1;     // entries a STORE beat reads

    reg [WIDTH-1:0] mem [0:NB*BD-1];                     // entry `row * NB + bank`, as the banks address it
    reg [WIDTH-1:0] ra [0:NB-1];                         // each bank's port A (STORE) read register
    reg [WIDTH-1:0] rb [0:NB-1];                         // each bank's port B (compute) read register
    reg [AW-1:0]    r_a0;
    reg [31:0]      r_e0, r_off;
    // activity counters, named as bb_banks names them (bb_tb reads core.acc.banks.act_*)
    reg [63:0]      act_a_rd, act_a_wr, act_b_rd, act_b_wr;

    wire [31:0] e0  = dr_addr / EBYTES;
    wire [31:0] off = dr_addr % EBYTES;

    integer r, i, n;
    reg [31:0]  e;
    reg [NB-1:0] rd_bank, wr_bank;

    `include "bb_storeslot.vh"   // bb_slot(entry): the store index of an entry

    initial begin
        for (i = 0; i < NB * BD; i = i + 1) mem[i] = {WIDTH{1'b0}};
        act_a_rd = 64'd0;
        act_a_wr = 64'd0;
        act_b_rd = 64'd0;
        act_b_wr = 64'd0;
    end

    always @(posedge clk) begin
        rd_bank = {NB{1'b0}};
        wr_bank = {NB{1'b0}};
        // reads first (read-before-write, as bb_sram_2p), then `clear`, then the writes
        if (|ren) begin
            r_a0 <= raddr;
            n = 0;
            for (r = 0; r < R; r = r + 1) begin
                if (ren[r]) begin
                    e = raddr + r;
                    rb[e % NB] <= mem[bb_slot(e)];
                    rd_bank[e % NB] = 1'b1;
                    n = n + 1;
                end
            end
            if (!clear) act_b_rd <= act_b_rd + WIDTH * n;
        end
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
            act_b_rd <= 64'd0;
            act_b_wr <= 64'd0;
        end
        if (|wen) begin
            n = 0;
            for (r = 0; r < R; r = r + 1) begin
                if (wen[r]) begin
                    e = waddr + r;
                    mem[bb_slot(e)] = (wsrc == 2'd1) ? wdata1[r*WIDTH +: WIDTH]
                                 : (wsrc == 2'd2) ? wdata2[r*WIDTH +: WIDTH] : wdata0[r*WIDTH +: WIDTH];
                    wr_bank[e % NB] = 1'b1;
                    n = n + 1;
                end
            end
            if (!clear) act_b_wr <= act_b_wr + WIDTH * n;
        end
        if (|(rd_bank & wr_bank)) begin
            for (i = NB - 1; i >= 0; i = i - 1) if (rd_bank[i] && wr_bank[i]) n = i;
            $display("bb_accbuf: ERROR bank %0d read and written in one cycle", n);
            $finish;
        end
    end

    genvar g;
    generate
        for (g = 0; g < R; g = g + 1) begin : rrow
            assign rdata[g*WIDTH +: WIDTH] = rb[(r_a0 + g) % NB];
        end
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
