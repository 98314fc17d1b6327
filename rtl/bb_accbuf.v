// bb_accbuf: the ACC buffer: NB bb_sram_2p banks (NB = 4R), entry e in bank e % NB at row e / NB.
//
// Port A: STORE reads (bb_banks). Port B: the compute unit, which per cycle reads rows r < R at entries
// raddr + r (`ren[r]`; BGEMM's accumulate initialisation, REQUANT's input) and writes rows r < R at
// entries waddr + r (`wen[r]`; results of an issue two or three cycles earlier). R consecutive entries are
// in R different banks; a read run and a write run in the same cycle must not share a bank, since the
// compute unit has one port per bank. The issue schedule guarantees it (docs/timing.md section 4.1): with
// NB = 4R the runs of a pass and of the pass two issues back are R or 2R entries apart, and the one case
// that is not (a one-step accumulating BGEMM over 3 or more column tiles) issues every other cycle with a
// later write-back. A simulation check reports a violation.
// The banks' port B writes whole entries, declared as 32-bit lanes: Yosys pairs a masked write port with
// the read port on the same address into one read/write port, which it does not for an unmasked one.
// Write data is picked from three sources by `wsrc` (0 array, 1 requantize, 2 pool), so the producers need
// no multiplexer of their own.
`timescale 1ns/1ps
`include "bb_automatic.vh"
module bb_accbuf #(
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
`ifdef BB_ACC_SHARED
    // simulation speed (Verilator): the banks as one store with each bank's read registers (bb_accstore)
    bb_accstore #(.R(R), .NB(NB), .DEPTH(DEPTH), .EBYTES(EBYTES), .B(B), .FAW(FAW), .AW(AW), .RAW(RAW)) banks (
        .clk(clk), .clear(clear), .dr_en(dr_en), .dr_addr(dr_addr), .dr_data(dr_data), .ren(ren), .raddr(raddr),
        .rdata(rdata), .wen(wen), .waddr(waddr), .wsrc(wsrc), .wdata0(wdata0), .wdata1(wdata1), .wdata2(wdata2)
    );
`else
    wire [NB-1:0]       en, we;
    wire [NB*RAW-1:0]   row;
    wire [NB*WIDTH-1:0] wd, rd;
    reg  [AW-1:0]       r_a0;    // start of the read run whose data is on `rd`
    always @(posedge clk) if (|ren) r_a0 <= raddr;

    // row q of the write source `wsrc` (a macro, not a function: @* sees the signals it reads)
`define BB_ACC_SRC(q) ((wsrc == 2'd1) ? wdata1[(q)*WIDTH +: WIDTH] : (wsrc == 2'd2) ? wdata2[(q)*WIDTH +: WIDTH] \
                       : wdata0[(q)*WIDTH +: WIDTH])
    genvar k, r;
    generate
        for (k = 0; k < NB; k = k + 1) begin : bank
            // bank k holds read row jr and write row jw (if < R); evaluated only in cycles that access ACC
            reg [31:0]      jr, jw;
            reg             rd_on, wr_on;
            reg [RAW-1:0]   rowk;
            reg [WIDTH-1:0] wdk;
            integer         q;
            // (Verilator: wdk holds its value when the bank is not written, by design)
            /* verilator lint_off LATCH */
            always @* begin
                jr = 32'd0;
                jw = 32'd0;
                rd_on = 1'b0;
                wr_on = 1'b0;
                rowk = {RAW{1'b0}};
                `BB_EVAL_WHEN((|ren) || (|wen)) begin
                    jr = (k + NB - raddr % NB) % NB;
                    jw = (k + NB - waddr % NB) % NB;
                    // (|ren)/(|wen) first: an address register that was never written (X in a 4-state
                    // simulator) must not make an idle port look busy
                    rd_on = (|ren) && jr < R && ren[jr % R];
                    wr_on = (|wen) && jw < R && wen[jw % R];
                    rowk = wr_on ? (waddr + jw) / NB : (raddr + jr) / NB;
                end
                // write data: row jw of the source, picked by a loop over the rows (constant slices: a simulator
                // copies one entry instead of shifting the R-entry bus); not assigned under Verilator in cycles
                // that do not write this bank, when the banks do not read it
                `BB_EVAL_WHEN(wr_on) begin
                    wdk = `BB_ACC_SRC(R - 1);
                    /*verilator unroll_full*/
                    for (q = 0; q < R - 1; q = q + 1) begin
                        if (jw == q) wdk = `BB_ACC_SRC(q);
                    end
                end
            end
            /* verilator lint_on LATCH */
            assign en[k] = rd_on || wr_on;
            assign we[k] = wr_on;
            assign row[k*RAW +: RAW] = rowk;
            assign wd[k*WIDTH +: WIDTH] = wdk;
`ifndef SYNTHESIS
            always @(posedge clk) begin
                if (rd_on && wr_on) begin
                    $display("bb_accbuf: ERROR bank %0d read and written in one cycle", k);
                    $finish;
                end
            end
`endif
        end
        for (r = 0; r < R; r = r + 1) begin : rrow
            assign rdata[r*WIDTH +: WIDTH] = rd[((r_a0 + r) % NB)*WIDTH +: WIDTH];
        end
    endgenerate

    bb_banks #(.NB(NB), .DEPTH(DEPTH), .EBYTES(EBYTES), .B(B), .GB(32), .FAW(FAW), .RAW(RAW),
                .DW(0), .DR(1), .B_RD(1), .B_WR(1)) banks (
        .clk(clk), .clear(clear), .dw_en(1'b0), .dw_addr({FAW{1'b0}}), .dw_mask({B{1'b0}}), .dw_data({8*B{1'b0}}),
        .dr_en(dr_en), .dr_addr(dr_addr), .dr_data(dr_data),
        .b_en(en), .b_we(we), .b_addr(row), .b_mask({NB*WIDTH/32{1'b1}}), .b_wdata(wd), .b_rdata(rd)
    );
`undef BB_ACC_SRC
`endif
endmodule
