// bb_outbuf: the OUT buffer: NB bb_sram_2p banks (NB = 8R), entry e in bank e % NB at row e / NB.
//
// Port A: STORE reads (bb_banks). Port B: REQUANT and POOL results. Row r (`wen[r]`) writes planes
// q < n of one pixel at entries base[r] + q, masked to one C-lane slice of the W-bit entries (`wmask`, a
// multiple of C bits; the banks' port B granule is C bits). A row's planes are consecutive entries (at
// most 8, so different banks); rows of one cycle must not share a bank, which the compute unit guarantees
// by writing a pass's rows in write groups: rows whose runs lie within 8R consecutive entries (all R rows
// when the output stride is at most 8; docs/timing.md section 4.1). A simulation check reports a
// violation. Data: rows x 8 planes x C lanes from REQUANT (`wsrc` 0) or POOL (1), bit (r*8 + q)*C + l;
// every C-lane slice of a written word carries the lanes' bits and the mask picks the instruction's slice,
// so no shifter places them. All of it is evaluated only in cycles that write.
`timescale 1ns/1ps
module bb_outbuf #(
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
`ifdef BB_OUT_SHARED
    // simulation speed (Verilator): the banks as one store with each bank's read register (bb_outstore)
    bb_outstore #(.R(R), .C(C), .NB(NB), .DEPTH(DEPTH), .EBYTES(EBYTES), .B(B), .FAW(FAW), .AW(AW), .RAW(RAW)) banks (
        .clk(clk), .clear(clear), .dr_en(dr_en), .dr_addr(dr_addr), .dr_data(dr_data), .wen(wen), .wbase(wbase),
        .wn(wn), .wsrc(wsrc), .wmask(wmask), .wdata0(wdata0), .wdata1(wdata1)
    );
`else
    localparam NG = WIDTH / C;   // write granules per entry
    wire [NB-1:0]       en, hit2;
    wire [NB*RAW-1:0]   row;
    wire [NB*WIDTH-1:0] wd;
    wire [NG-1:0]       gm;
    wire                clash = |hit2;
    wire [R*32-1:0]     wmod, wdiv;   // per row: wbase mod NB, wbase / NB
    genvar g, k;
    generate
        for (g = 0; g < NG; g = g + 1) begin : gran
            assign gm[g] = wmask[g*C];
        end
        // scatter the rows' planes onto the banks (only in cycles that write): bank k takes plane q of row r
        // when entry wbase[r] + q is in it, i.e. q = (k - wbase[r]) mod NB, if q < n (one q per row, as n <= 8
        // <= NB), at bank row (wbase[r] + q) / NB = wbase[r] / NB + (k < wbase[r] mod NB); of two rows on one
        // bank (a clash, never in a correct schedule) the later row wins. Every index is a constant per bank
        // (a run-time bank index into the NB*WIDTH-bit buses made Yosys carry R*8 copies of them: millions
        // of wire bits on `edge`), and the divisions are done once per row.
        for (g = 0; g < R; g = g + 1) begin : wrow
            assign wmod[g*32 +: 32] = wbase[g*AW +: AW] % NB;
            assign wdiv[g*32 +: 32] = wbase[g*AW +: AW] / NB;
        end
        for (k = 0; k < NB; k = k + 1) begin : bank
            integer r;
            reg [31:0]        q, m;
            reg               b_en, b_two;
            reg [RAW-1:0]     b_row;
            reg [WIDTH-1:0]   b_wd;
            reg [8*C-1:0]     pb;
            always @* begin
                b_en = 1'b0;
                b_two = 1'b0;
                b_row = {RAW{1'b0}};
                b_wd = {WIDTH{1'b0}};
                q = 32'd0;
                m = 32'd0;
                r = 0;
                pb = {8*C{1'b0}};
                if (|wen) begin
                    for (r = 0; r < R; r = r + 1) begin
                        m = wmod[r*32 +: 32];
                        q = (k >= m) ? k - m : k + NB - m;
                        if (wen[r] && q < 8 && q < wn) begin
                            b_two = b_two | b_en;
                            b_en = 1'b1;
                            b_row = wdiv[r*32 +: 32] + (k < m);
                            pb = wsrc ? wdata1[r*8*C +: 8*C] : wdata0[r*8*C +: 8*C];
                            b_wd = {(WIDTH/C){pb[q[2:0]*C +: C]}};   // plane q of row r in every slice
                        end
                    end
                end
            end
            assign en[k] = b_en;
            assign hit2[k] = b_two;
            assign row[k*RAW +: RAW] = b_row;
            assign wd[k*WIDTH +: WIDTH] = b_wd;
        end
    endgenerate
`ifndef SYNTHESIS
    always @(posedge clk) begin
        if (clash) begin
            $display("bb_outbuf: ERROR two rows write one bank in one cycle");
            $finish;
        end
    end
`endif

    bb_banks #(.NB(NB), .DEPTH(DEPTH), .EBYTES(EBYTES), .B(B), .GB(C), .FAW(FAW), .RAW(RAW),
                .DW(0), .DR(1), .B_RD(0), .B_WR(1)) banks (
        .clk(clk), .clear(clear), .dw_en(1'b0), .dw_addr({FAW{1'b0}}), .dw_mask({B{1'b0}}), .dw_data({8*B{1'b0}}),
        .dr_en(dr_en), .dr_addr(dr_addr), .dr_data(dr_data),
        .b_en(en), .b_we(en), .b_addr(row), .b_mask({NB{gm}}), .b_wdata(wd), .b_rdata()
    );
`endif
endmodule
