// bb_outbuf: the OUT buffer: NB bb_sram_2p banks (NB = 8R), entry e in bank e % NB at row e / NB.
//
// Port A: STORE reads (bb_banks). Port B: REQUANT and POOL results. Row r (`wen[r]`) writes planes
// q < n of one pixel at entries base[r] + q, masked to one C-lane slice of the W-bit entries (`wmask`, a
// multiple of C bits; the banks' port B granule is C bits). A row's planes are consecutive entries (at
// most 8, so different banks); rows of one cycle must not share a bank, which the compute unit guarantees
// by writing a pass's rows in write groups: rows whose runs lie within 8R consecutive entries (all R rows
// when the output stride is at most 8; docs/timing.md section 4.1). A simulation check reports a
// violation. Data: rows x 8 planes from REQUANT (`wsrc` 0) or POOL (1).
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
    input  wire [R*8*WIDTH-1:0]  wdata0,
    input  wire [R*8*WIDTH-1:0]  wdata1
);
    localparam NG = WIDTH / C;   // write granules per entry
    reg  [NB-1:0]       en;
    reg  [NB*RAW-1:0]   row;
    reg  [NB*WIDTH-1:0] wd;
    wire [NG-1:0]       gm;
    genvar g;
    generate
        for (g = 0; g < NG; g = g + 1) begin : gran
            assign gm[g] = wmask[g*C];
        end
    endgenerate

    // scatter the rows' planes onto the banks (only in cycles that write)
    integer r, q;
    reg [31:0] e, k;
    reg        clash;
    always @* begin
        en = {NB{1'b0}};
        row = {NB*RAW{1'b0}};
        wd = {NB*WIDTH{1'b0}};
        clash = 1'b0;
        e = 32'd0;
        k = 32'd0;
        if (|wen) begin
            for (r = 0; r < R; r = r + 1) begin
                for (q = 0; q < 8; q = q + 1) begin
                    if (wen[r] && q < wn) begin
                        e = wbase[r*AW +: AW] + q;
                        k = e % NB;
                        clash = clash | en[k];
                        en[k] = 1'b1;
                        row[k*RAW +: RAW] = e / NB;
                        wd[k*WIDTH +: WIDTH] = wsrc ? wdata1[(r*8+q)*WIDTH +: WIDTH] : wdata0[(r*8+q)*WIDTH +: WIDTH];
                    end
                end
            end
        end
    end
`ifndef SYNTHESIS
    always @(posedge clk) begin
        if (clash) begin
            $display("bb_outbuf: ERROR two rows write one bank in one cycle");
            $finish;
        end
    end
`endif

    bb_banks #(.NB(NB), .DEPTH(DEPTH), .EBYTES(EBYTES), .B(B), .GB(C), .FAW(FAW), .RAW(RAW)) banks (
        .clk(clk), .clear(clear), .dw_en(1'b0), .dw_addr({FAW{1'b0}}), .dw_mask({B{1'b0}}), .dw_data({8*B{1'b0}}),
        .dr_en(dr_en), .dr_addr(dr_addr), .dr_data(dr_data),
        .b_en(en), .b_we(en), .b_addr(row), .b_mask({NB{gm}}), .b_wdata(wd), .b_rdata()
    );
endmodule
