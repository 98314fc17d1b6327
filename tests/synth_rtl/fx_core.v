// fx_core: a stand-in for bb_core with the five buffers under the same instance names (inp, wgt, acc,
// outb, cst), sized from the preset's parameters like bb_core. BAD=0: every buffer is a 1R+1W RAM.
// BAD=1: acc has two read ports (3 ports) and cst is cleared by a loop of blocking writes (flip-flops).
// Fixture of tests/test_synth.py.
module fx_core #(
    parameter ARRAY_COLS    = 4,
    parameter WORD_BITS     = 64,
    parameter INP_ENTRIES   = 1024,
    parameter WGT_ENTRIES   = 1024,
    parameter ACC_ENTRIES   = 1024,
    parameter OUT_ENTRIES   = 512,
    parameter CONST_ENTRIES = 64,
    parameter BAD           = 0
) (
    input  wire        clk,
    input  wire        clear,
    input  wire        we,
    input  wire [15:0] addr,
    input  wire [63:0] wdata,
    output wire [63:0] rdata
);
    localparam W_INP = WORD_BITS, W_WGT = ARRAY_COLS * WORD_BITS, W_ACC = ARRAY_COLS * 32;
    localparam W_OUT = WORD_BITS, W_CONST = ARRAY_COLS * 128;
    wire [W_INP-1:0] q_inp;
    wire [W_WGT-1:0] q_wgt;
    wire [W_ACC-1:0] q_acc, q_acc1;
    wire [W_OUT-1:0] q_out;
    wire [W_CONST-1:0] q_cst;
    fx_ram2p #(.DEPTH(INP_ENTRIES), .WIDTH(W_INP), .AW($clog2(INP_ENTRIES))) inp (
        .clk(clk), .we(we), .waddr(addr[$clog2(INP_ENTRIES)-1:0]), .wdata({W_INP/64{wdata}}),
        .wmask({W_INP/8{1'b1}}), .re(1'b1), .raddr(addr[$clog2(INP_ENTRIES)-1:0] + 1'b1), .rdata(q_inp));
    fx_ram2p #(.DEPTH(WGT_ENTRIES), .WIDTH(W_WGT), .AW($clog2(WGT_ENTRIES))) wgt (
        .clk(clk), .we(we), .waddr(addr[$clog2(WGT_ENTRIES)-1:0]), .wdata({W_WGT/64{wdata}}),
        .wmask({W_WGT/8{1'b1}}), .re(1'b1), .raddr(addr[$clog2(WGT_ENTRIES)-1:0] + 2'd2), .rdata(q_wgt));
    fx_ram2p #(.DEPTH(OUT_ENTRIES), .WIDTH(W_OUT), .AW($clog2(OUT_ENTRIES))) outb (
        .clk(clk), .we(we), .waddr(addr[$clog2(OUT_ENTRIES)-1:0]), .wdata({W_OUT/64{wdata}}),
        .wmask({W_OUT/8{1'b1}}), .re(1'b1), .raddr(addr[$clog2(OUT_ENTRIES)-1:0] + 2'd3), .rdata(q_out));
    generate
        if (BAD) begin : bad
            fx_ram3p #(.DEPTH(ACC_ENTRIES), .WIDTH(W_ACC), .AW($clog2(ACC_ENTRIES))) acc (
                .clk(clk), .we(we), .waddr(addr[$clog2(ACC_ENTRIES)-1:0]), .wdata({W_ACC/64{wdata}}),
                .raddr0(addr[$clog2(ACC_ENTRIES)-1:0] + 3'd4), .raddr1(addr[$clog2(ACC_ENTRIES)-1:0] + 3'd5),
                .rdata0(q_acc), .rdata1(q_acc1));
            fx_regfile #(.DEPTH(CONST_ENTRIES), .WIDTH(W_CONST), .AW($clog2(CONST_ENTRIES))) cst (
                .clk(clk), .clear(clear), .we(we), .waddr(addr[$clog2(CONST_ENTRIES)-1:0]),
                .wdata({W_CONST/64{wdata}}), .raddr(addr[$clog2(CONST_ENTRIES)-1:0] + 3'd6), .rdata(q_cst));
        end else begin : good
            fx_ram2p #(.DEPTH(ACC_ENTRIES), .WIDTH(W_ACC), .AW($clog2(ACC_ENTRIES))) acc (
                .clk(clk), .we(we), .waddr(addr[$clog2(ACC_ENTRIES)-1:0]), .wdata({W_ACC/64{wdata}}),
                .wmask({W_ACC/8{1'b1}}), .re(1'b1), .raddr(addr[$clog2(ACC_ENTRIES)-1:0] + 3'd4), .rdata(q_acc));
            assign q_acc1 = {W_ACC{1'b0}};
            fx_ram2p #(.DEPTH(CONST_ENTRIES), .WIDTH(W_CONST), .AW($clog2(CONST_ENTRIES))) cst (
                .clk(clk), .we(we), .waddr(addr[$clog2(CONST_ENTRIES)-1:0]), .wdata({W_CONST/64{wdata}}),
                .wmask({W_CONST/8{1'b1}}), .re(1'b1), .raddr(addr[$clog2(CONST_ENTRIES)-1:0] + 3'd6),
                .rdata(q_cst));
        end
    endgenerate
    // Fold every read port into the output so nothing is optimised away.
    function [63:0] fold;
        input [4095:0] v;
        input integer n;
        integer i;
        begin
            fold = 64'd0;
            for (i = 0; i < 4096 / 64; i = i + 1)
                if (i * 64 < n) fold = fold ^ v[64*i +: 64];
        end
    endfunction
    assign rdata = fold(q_inp, W_INP) ^ fold(q_wgt, W_WGT) ^ fold(q_acc, W_ACC) ^ fold(q_acc1, W_ACC)
                 ^ fold(q_out, W_OUT) ^ fold(q_cst, W_CONST);
endmodule
