// The OUT scatter as its specification states it, row by row: bank k takes plane q = (k - wbase[r] mod NB)
// mod NB of row r when q < n, at bank row (wbase[r] + q) / NB; of two rows on one bank the later wins.
// tests/test_outscatter_formal.py proves bb_outscatter (constant indices, AND-OR trees) equal to it.
module outscatter_spec #(
    parameter R = 2, parameter C = 4, parameter NB = 16, parameter AW = 9, parameter RAW = 5, parameter WIDTH = 64
) (
    input  wire [R-1:0]        wen,
    input  wire [R*AW-1:0]     wbase,
    input  wire [3:0]          wn,
    input  wire                wsrc,
    input  wire [R*8*C-1:0]    wdata0,
    input  wire [R*8*C-1:0]    wdata1,
    output reg  [NB-1:0]       en,
    output reg  [NB*RAW-1:0]   row,
    output reg  [NB*WIDTH-1:0] wd,
    output reg                 clash
);
    localparam QW = AW + 2;          // wide enough for k + NB and base + q (NB <= 2^AW), narrow for the SAT solver
    localparam [QW-1:0] NBQ = NB;
    integer k, r;
    reg [QW-1:0] kq, b, q, e;
    reg [8*C-1:0] pb;
    always @* begin
        en = 0;
        row = 0;
        wd = 0;
        clash = 0;
        for (k = 0; k < NB; k = k + 1)
            for (r = 0; r < R; r = r + 1) begin
                kq = k;
                b = wbase[r*AW +: AW];
                q = (kq + NBQ - b % NBQ) % NBQ;
                if (wen[r] && q < wn && q < 8) begin
                    clash = clash | en[k];
                    en[k] = 1'b1;
                    e = b + q;
                    row[k*RAW +: RAW] = e / NBQ;
                    pb = wsrc ? wdata1[r*8*C +: 8*C] : wdata0[r*8*C +: 8*C];
                    wd[k*WIDTH +: WIDTH] = {(WIDTH/C){pb[q*C +: C]}};
                end
            end
    end
endmodule

// ok = 1 when bb_outscatter and the specification agree on every output. SPEC_WSRC_FLIP = 1 feeds the
// specification the other source: the proof must then fail (it is not vacuous).
module outscatter_check #(
    parameter R = 2, parameter C = 4, parameter NB = 16, parameter AW = 9, parameter RAW = 5, parameter WIDTH = 64,
    parameter SPEC_WSRC_FLIP = 0
) (
    input  wire [R-1:0]     wen,
    input  wire [R*AW-1:0]  wbase,
    input  wire [3:0]       wn,
    input  wire             wsrc,
    input  wire [R*8*C-1:0] wdata0,
    input  wire [R*8*C-1:0] wdata1,
    output wire             ok
);
    wire [NB-1:0] en_d, en_s;
    wire [NB*RAW-1:0] row_d, row_s;
    wire [NB*WIDTH-1:0] wd_d, wd_s;
    wire clash_d, clash_s;
    bb_outscatter #(.R(R), .C(C), .NB(NB), .AW(AW), .RAW(RAW), .WIDTH(WIDTH)) dut (
        .wen(wen), .wbase(wbase), .wn(wn), .wsrc(wsrc), .wdata0(wdata0), .wdata1(wdata1),
        .en(en_d), .row(row_d), .wd(wd_d), .clash(clash_d));
    outscatter_spec #(.R(R), .C(C), .NB(NB), .AW(AW), .RAW(RAW), .WIDTH(WIDTH)) spec (
        .wen(wen), .wbase(wbase), .wn(wn), .wsrc(wsrc ^ SPEC_WSRC_FLIP[0]), .wdata0(wdata0), .wdata1(wdata1),
        .en(en_s), .row(row_s), .wd(wd_s), .clash(clash_s));
    assign ok = en_d == en_s && row_d == row_s && wd_d == wd_s && clash_d == clash_s;
endmodule
