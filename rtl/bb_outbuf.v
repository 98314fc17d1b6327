// bb_outbuf: the OUT buffer: NB bb_sram_2p banks (NB = 8R), entry e in bank e % NB at row e / NB.
//
// Port A: STORE reads (bb_banks). Port B: REQUANT and POOL results. Row r (`wen[r]`) writes planes
// q < n of one pixel at entries base[r] + q, masked to one C-lane slice of the W-bit entries (`wmask`, a
// multiple of C bits; the banks' port B granule is C bits). A row's planes are consecutive entries (at
// most 8, so different banks); rows of one cycle must not share a bank, which the compute unit guarantees
// by writing a pass's rows in write groups: rows whose runs lie within 8R consecutive entries (all R rows
// when the output stride is at most 8; docs/timing.md section 4.1). A simulation check reports a
// violation. bb_outscatter places the rows' planes on the banks: every C-lane slice of a written word carries
// the plane's lanes and the mask picks the instruction's slice, so no shifter places them.
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
    wire [NB-1:0]       en;
    wire [NB*RAW-1:0]   row;
    wire [NB*WIDTH-1:0] wd;
    wire [NG-1:0]       gm;
    wire                clash;
    genvar g;
    generate
        for (g = 0; g < NG; g = g + 1) begin : gran
            assign gm[g] = wmask[g*C];
        end
    endgenerate
    bb_outscatter #(.R(R), .C(C), .NB(NB), .AW(AW), .RAW(RAW), .WIDTH(WIDTH)) scatter (
        .wen(wen), .wbase(wbase), .wn(wn), .wsrc(wsrc), .wdata0(wdata0), .wdata1(wdata1),
        .en(en), .row(row), .wd(wd), .clash(clash)
    );
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
