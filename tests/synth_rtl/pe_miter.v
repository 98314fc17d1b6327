// pe_miter: bb_pe's word form (pe_gold: rtl/bb_pe.v read with BB_PE_WORDS defined, the popcnt-friendly
// bit-slice popcount the core's simulations run) against its gate form (pe_gate: the LUT-friendly full-adder
// tree synthesis maps), same
// inputs; `diff` is 1 when their accumulators differ (tests/test_synth_pe.py proves it never is).
module pe_miter #(
    parameter W = 64,
    parameter P = 1
) (
    input  wire           clk,
    input  wire           en,
    input  wire           first,
    input  wire           use_init,
    input  wire [31:0]    init,
    input  wire [P*W-1:0] a,
    input  wire [P*W-1:0] w,
    input  wire [P*4-1:0] shift,
    input  wire [P-1:0]   bvalid,
    output wire           diff
);
    wire [31:0] g, h;
    pe_gold #(.W(W), .P(P)) ug (.clk(clk), .en(en), .first(first), .use_init(use_init), .init(init), .a(a), .w(w),
                                .shift(shift), .bvalid(bvalid), .acc(g));
    pe_gate #(.W(W), .P(P)) uh (.clk(clk), .en(en), .first(first), .use_init(use_init), .init(init), .a(a), .w(w),
                                .shift(shift), .bvalid(bvalid), .acc(h));
    assign diff = g != h;
endmodule
