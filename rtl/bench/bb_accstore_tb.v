// bb_accstore_tb: bb_accbuf as built (NB banks) beside bb_accstore (one store; the model the core's Verilator
// builds simulate instead), driven with the same random legal accesses and compared in every cycle: the
// compute unit's row reads `rdata`, STORE's beat `dr_data` and the four activity counters.
//
// Stimulus (seeded by SEED): read runs of R rows (random row enables) at random entries, write runs from a
// random source at random entries whose banks the cycle's read run does not use (bb_accbuf has one compute
// port per bank), STORE beats at beat-aligned byte addresses, a `clear` now and then. Outputs as
// bb_winstore_tb: `done`, `mismatches`, `reads`, `live` (compared read data that was not zero), `unknown`,
// `last_unknown`.
`timescale 1ns/1ps
module bb_accstore_tb #(
    parameter R      = 2,
    parameter NB     = 8,
    parameter DEPTH  = 256,
    parameter EBYTES = 16,
    parameter B      = 8,
    parameter FAW    = 12,
    parameter AW     = 8,
    parameter RAW    = 5,
    parameter CYCLES = 4000,
    parameter SEED   = 1
) (
    input  wire        clk,
    output reg         done,
    output reg  [31:0] mismatches,
    output reg  [31:0] reads,
    output reg  [31:0] live,
    output reg  [31:0] unknown,
    output reg  [31:0] last_unknown
);
    localparam WIDTH = 8 * EBYTES;
    localparam STEP  = (B < EBYTES) ? B : EBYTES;
    localparam NE    = (B >= EBYTES) ? B / EBYTES : 1;

    reg                 clear, dr_en;
    reg  [FAW-1:0]      dr_addr;
    reg  [R-1:0]        ren, wen;
    reg  [AW-1:0]       raddr, waddr;
    reg  [1:0]          wsrc;
    reg  [R*WIDTH-1:0]  wd0, wd1, wd2;
    wire [8*B-1:0]      dr_rep, dr_one;
    wire [R*WIDTH-1:0]  rd_rep, rd_one;

    bb_accbuf #(.R(R), .NB(NB), .DEPTH(DEPTH), .EBYTES(EBYTES), .B(B), .FAW(FAW), .AW(AW), .RAW(RAW)) rep (
        .clk(clk), .clear(clear), .dr_en(dr_en), .dr_addr(dr_addr), .dr_data(dr_rep), .ren(ren), .raddr(raddr),
        .rdata(rd_rep), .wen(wen), .waddr(waddr), .wsrc(wsrc), .wdata0(wd0), .wdata1(wd1), .wdata2(wd2)
    );
    bb_accstore #(.R(R), .NB(NB), .DEPTH(DEPTH), .EBYTES(EBYTES), .B(B), .FAW(FAW), .AW(AW), .RAW(RAW)) one (
        .clk(clk), .clear(clear), .dr_en(dr_en), .dr_addr(dr_addr), .dr_data(dr_one), .ren(ren), .raddr(raddr),
        .rdata(rd_one), .wen(wen), .waddr(waddr), .wsrc(wsrc), .wdata0(wd0), .wdata1(wd1), .wdata2(wd2)
    );

    integer seed, cyc, k, q;
    reg [31:0] x, ra, wa;
    reg [R-1:0] re, we;
    reg [NB-1:0] rbanks, wbanks;

    initial begin
        seed = SEED;
        cyc = 0;
        done = 1'b0;
        mismatches = 0;
        reads = 0;
        live = 0;
        unknown = 0;
        last_unknown = 0;
        {clear, dr_en, dr_addr, ren, wen, raddr, waddr, wsrc, wd0, wd1, wd2} = 0;
    end

    always @(posedge clk) begin
        if (!done) begin
            if ((^rd_rep === 1'bx) || (^dr_rep === 1'bx)) begin unknown <= unknown + 1; last_unknown <= cyc; end
            else if (rd_rep !== rd_one || dr_rep !== dr_one) mismatches <= mismatches + 1;
            if (rep.banks.act_a_rd !== one.act_a_rd || rep.banks.act_a_wr !== one.act_a_wr
                || rep.banks.act_b_rd !== one.act_b_rd || rep.banks.act_b_wr !== one.act_b_wr)
                mismatches <= mismatches + 1;
            for (k = 0; k < R; k = k + 1) if (|rd_rep[k*WIDTH +: WIDTH]) live <= live + 1;
            // next stimulus
            cyc = cyc + 1;
            if (cyc >= CYCLES) done <= 1'b1;
            x = $random(seed);
            clear <= (x % 101) == 0;
            re = $random(seed);
            we = $random(seed);
            ra = {$random(seed)} % (DEPTH - R + 1);
            wa = {$random(seed)} % (DEPTH - R + 1);
            rbanks = {NB{1'b0}};
            wbanks = {NB{1'b0}};
            for (q = 0; q < R; q = q + 1) begin
                if (re[q]) rbanks[(ra + q) % NB] = 1'b1;
                if (we[q]) wbanks[(wa + q) % NB] = 1'b1;
            end
            if (|(rbanks & wbanks)) we = {R{1'b0}};   // one compute port per bank: no read and write of a bank
            if (|re) reads = reads + 1;
            ren <= re;
            wen <= we;
            raddr <= ra[AW-1:0];
            waddr <= wa[AW-1:0];
            wsrc <= {$random(seed)} % 3;
            for (k = 0; k < R * WIDTH / 32; k = k + 1) begin
                wd0[32*k +: 32] <= $random(seed);
                wd1[32*k +: 32] <= $random(seed);
                wd2[32*k +: 32] <= $random(seed);
            end
            x = $random(seed);
            dr_en <= x[0];
            dr_addr <= (({$random(seed)} % ((DEPTH - NE + 1) * EBYTES)) / STEP) * STEP;   // a beat inside ACC
        end
    end
endmodule
