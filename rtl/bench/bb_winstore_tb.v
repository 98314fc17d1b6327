// bb_winstore_tb: bb_winbuf as built (COPIES replicated bank sets) beside bb_winstore (one store, COPIES read
// ports; the model the core's Verilator builds simulate instead), driven with the same random stimulus and
// compared in every cycle: every copy's window `win` and its activity counters.
//
// Stimulus (seeded by SEED): LOAD beats at beat-aligned byte addresses with random byte masks (mostly full),
// window reads by random copies at random in-range addresses with rlen 1 .. NWIN, a `clear` now and then.
// `done` rises after CYCLES cycles; `mismatches` counts differing comparisons, `reads` the window reads made
// and `live` the compared window entries that were not zero (the data carries information); `unknown` the
// cycles with X on the replicated form's windows (4-state simulators, before a bank's first read).
// `last_unknown` is the last such cycle.
`timescale 1ns/1ps
module bb_winstore_tb #(
    parameter COPIES = 3,
    parameter NB     = 8,
    parameter NWIN   = 8,
    parameter DEPTH  = 256,
    parameter EBYTES = 8,
    parameter B      = 16,
    parameter FAW    = 11,
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
    localparam STEP  = (B < EBYTES) ? B : EBYTES;        // beat alignment (bytes)

    reg                          clear, dw_en;
    reg  [FAW-1:0]               dw_addr;
    reg  [B-1:0]                 dw_mask;
    reg  [8*B-1:0]               dw_data;
    reg  [COPIES-1:0]            ren;
    reg  [COPIES*AW-1:0]         raddr;
    reg  [3:0]                   rlen;
    wire [COPIES*NWIN*WIDTH-1:0] win_rep, win_one;
    wire [63:0]                  one_a_wr;
    wire [COPIES*64-1:0]         one_b_rd;

    bb_winbuf #(.COPIES(COPIES), .NB(NB), .NWIN(NWIN), .DEPTH(DEPTH), .EBYTES(EBYTES), .B(B), .FAW(FAW), .AW(AW),
                .RAW(RAW)) rep (
        .clk(clk), .clear(clear), .dw_en(dw_en), .dw_addr(dw_addr), .dw_mask(dw_mask), .dw_data(dw_data),
        .ren(ren), .raddr(raddr), .rlen(rlen), .win(win_rep)
    );
    bb_winstore #(.COPIES(COPIES), .NB(NB), .NWIN(NWIN), .DEPTH(DEPTH), .EBYTES(EBYTES), .B(B), .FAW(FAW), .AW(AW),
                  .RAW(RAW)) one (
        .clk(clk), .clear(clear), .dw_en(dw_en), .dw_addr(dw_addr), .dw_mask(dw_mask), .dw_data(dw_data),
        .ren(ren), .raddr(raddr), .rlen(rlen), .win(win_one), .act_a_wr(one_a_wr), .act_b_rd(one_b_rd)
    );

    // the replicated form's counters, per copy (as bb_tb reads them)
    wire [COPIES*64-1:0] rep_a_wr, rep_b_rd, rep_a_rd, rep_b_wr;
    genvar gc;
    generate
        for (gc = 0; gc < COPIES; gc = gc + 1) begin : cnt
            assign rep_a_wr[gc*64 +: 64] = rep.copy[gc].banks.act_a_wr;
            assign rep_b_rd[gc*64 +: 64] = rep.copy[gc].banks.act_b_rd;
            assign rep_a_rd[gc*64 +: 64] = rep.copy[gc].banks.act_a_rd;
            assign rep_b_wr[gc*64 +: 64] = rep.copy[gc].banks.act_b_wr;
        end
    endgenerate

    integer seed, cyc, c, k, len;
    reg [31:0] r, a0;

    initial begin
        seed = SEED;
        cyc = 0;
        done = 1'b0;
        mismatches = 0;
        reads = 0;
        live = 0;
        unknown = 0;
        last_unknown = 0;
        {clear, dw_en, dw_addr, dw_mask, dw_data, ren, raddr} = 0;
        rlen = 4'd1;
    end

    always @(posedge clk) begin
        if (!done) begin
            // compare what the previous cycle's reads produced (both forms update at this edge's NBA, so
            // compare the values from before it: this block reads the pre-edge values)
            // (a 4-state simulator shows a bank's read register as X until the bank is first read: nothing to
            // compare; counted apart)
            if (^win_rep === 1'bx) begin unknown <= unknown + 1; last_unknown <= cyc; end
            else if (win_rep !== win_one) mismatches <= mismatches + 1;
            for (c = 0; c < COPIES; c = c + 1) begin
                if (rep_a_wr[c*64 +: 64] !== one_a_wr || rep_b_rd[c*64 +: 64] !== one_b_rd[c*64 +: 64]
                    || rep_a_rd[c*64 +: 64] !== 64'd0 || rep_b_wr[c*64 +: 64] !== 64'd0)
                    mismatches <= mismatches + 1;
                for (k = 0; k < NWIN; k = k + 1)
                    if (|win_rep[(c*NWIN + k)*WIDTH +: WIDTH]) live <= live + 1;
            end
            // next stimulus
            cyc = cyc + 1;
            if (cyc >= CYCLES) done <= 1'b1;
            r = $random(seed);
            clear <= (r % 97) == 0;
            dw_en <= r[8];
            r = $random(seed);
            dw_addr <= ((r % (DEPTH * EBYTES)) / STEP) * STEP;
            r = $random(seed);
            dw_mask <= r[2:0] == 0 ? {$random(seed), $random(seed), $random(seed), $random(seed)} : {B{1'b1}};
            for (k = 0; k < B; k = k + 1) dw_data[8*k +: 8] <= $random(seed);
            r = $random(seed);
            len = 1 + (r[7:0] % NWIN);
            rlen <= len;
            for (c = 0; c < COPIES; c = c + 1) begin
                r = $random(seed);
                ren[c] <= r[0] | r[1];
                a0 = (r >> 2) % (DEPTH - len + 1);
                raddr[c*AW +: AW] <= a0[AW-1:0];
                if (r[0] | r[1]) reads = reads + 1;
            end
        end
    end
endmodule
