// bb_outstore_tb: bb_outbuf as built (NB banks) beside bb_outstore (one store; the model the core's Verilator
// builds simulate instead), driven with the same random legal accesses and compared in every cycle: STORE's
// beat `dr_data` and the four activity counters.
//
// Stimulus (seeded by SEED): rows writing n = 0..8 planes of a pixel at random entries in one random C-lane
// slice (rows that would share a bank with an earlier row of the cycle are dropped: bb_outbuf has one write
// port per bank), data from a random source, STORE beats at beat-aligned byte addresses inside OUT (every
// cycle: what the writes left is read back), a `clear` now and then. Outputs as bb_winstore_tb: `done`,
// `mismatches`, `reads` (STORE beats), `live` (compared beats that were not zero), `unknown`, `last_unknown`.
`timescale 1ns/1ps
module bb_outstore_tb #(
    parameter R      = 2,
    parameter C      = 4,
    parameter NB     = 16,
    parameter DEPTH  = 256,
    parameter EBYTES = 8,
    parameter B      = 8,
    parameter FAW    = 11,
    parameter AW     = 8,
    parameter RAW    = 4,
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
    localparam NS    = WIDTH / C;                        // C-lane slices of an entry

    reg                 clear, dr_en, wsrc;
    reg  [FAW-1:0]      dr_addr;
    reg  [R-1:0]        wen;
    reg  [R*AW-1:0]     wbase;
    reg  [3:0]          wn;
    reg  [WIDTH-1:0]    wmask;
    reg  [R*8*C-1:0]    wd0, wd1;
    wire [8*B-1:0]      dr_rep, dr_one;

    bb_outbuf #(.R(R), .C(C), .NB(NB), .DEPTH(DEPTH), .EBYTES(EBYTES), .B(B), .FAW(FAW), .AW(AW), .RAW(RAW)) rep (
        .clk(clk), .clear(clear), .dr_en(dr_en), .dr_addr(dr_addr), .dr_data(dr_rep), .wen(wen), .wbase(wbase),
        .wn(wn), .wsrc(wsrc), .wmask(wmask), .wdata0(wd0), .wdata1(wd1)
    );
    bb_outstore #(.R(R), .C(C), .NB(NB), .DEPTH(DEPTH), .EBYTES(EBYTES), .B(B), .FAW(FAW), .AW(AW), .RAW(RAW)) one (
        .clk(clk), .clear(clear), .dr_en(dr_en), .dr_addr(dr_addr), .dr_data(dr_one), .wen(wen), .wbase(wbase),
        .wn(wn), .wsrc(wsrc), .wmask(wmask), .wdata0(wd0), .wdata1(wd1)
    );

    integer seed, cyc, k, q;
    reg [31:0] x, base, n;
    reg [R-1:0] we;
    reg [NB-1:0] used, mine;

    initial begin
        seed = SEED;
        cyc = 0;
        done = 1'b0;
        mismatches = 0;
        reads = 0;
        live = 0;
        unknown = 0;
        last_unknown = 0;
        {clear, dr_en, dr_addr, wen, wbase, wn, wsrc, wmask, wd0, wd1} = 0;
    end

    always @(posedge clk) begin
        if (!done) begin
            if (^dr_rep === 1'bx) begin unknown <= unknown + 1; last_unknown <= cyc; end
            else if (dr_rep !== dr_one) mismatches <= mismatches + 1;
            if (rep.banks.act_a_rd !== one.act_a_rd || rep.banks.act_a_wr !== one.act_a_wr
                || rep.banks.act_b_rd !== one.act_b_rd || rep.banks.act_b_wr !== one.act_b_wr)
                mismatches <= mismatches + 1;
            if (|dr_rep) live <= live + 1;
            // next stimulus
            cyc = cyc + 1;
            if (cyc >= CYCLES) done <= 1'b1;
            x = $random(seed);
            clear <= (x % 211) == 0;
            n = {$random(seed)} % 9;
            wn <= n;
            we = $random(seed);
            used = {NB{1'b0}};
            for (k = 0; k < R; k = k + 1) begin
                base = {$random(seed)} % (DEPTH - 8 + 1);
                wbase[k*AW +: AW] <= base[AW-1:0];
                mine = {NB{1'b0}};
                for (q = 0; q < 8; q = q + 1) if (q < n) mine[(base + q) % NB] = 1'b1;
                if (|(mine & used)) we[k] = 1'b0;   // one write port per bank: drop the row
                if (we[k]) used = used | mine;
            end
            wen <= we;
            wsrc <= $random(seed);
            x = {$random(seed)} % NS;
            wmask <= {{(WIDTH - C){1'b0}}, {C{1'b1}}} << (x * C);
            for (k = 0; k < R * 8 * C / 32 + 1; k = k + 1) begin
                wd0[32*k +: 32] <= $random(seed);
                wd1[32*k +: 32] <= $random(seed);
            end
            dr_en <= 1'b1;
            reads = reads + 1;
            dr_addr <= (({$random(seed)} % ((DEPTH - NE + 1) * EBYTES)) / STEP) * STEP;
        end
    end
endmodule
