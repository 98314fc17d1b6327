// bb_pe: one processing element of bb_pe_array: P binary branches of W-bit xnor-popcount into a 32-bit
// accumulator.
//
// In a cycle with `en` it adds, for every valid branch q < P (`bvalid[q]`), coef * (W - 2 * popcount(a_q XOR
// w_q)) where coef = 2^shift[q] (int32 arithmetic wraps); on `first` the sum starts from `init` (when
// `use_init`) or 0 instead of `acc`. Operands: branch q's activation word a_q = a[q*W +: W], weight word
// w_q = w[q*W +: W]. bb_pe_array instantiates it R x C times, so synthesis maps one PE once per parameter
// set (docs/rtl.md, "Synthesis").
//
// Two forms, giving the same accumulator (docs/rtl.md sections 5 and 7; tests/test_synth_pe.py proves it with
// Yosys for W = 64, P = 1, and the bb_pe_array unit bench checks the gate form against the numeric core on
// Icarus and Verilator for P = 1, 2, 4 and W = 64, 128, 192):
// * word form, for simulation (Verilator and Icarus runs of the core): per branch a 32-bit (W - 2c) << shift,
//   c = popcount(a XOR w) by the bit-slice adder tree on 64-bit words with the 0x0101.. multiply, which GCC
//   turns into `popcnt` and Icarus evaluates as a few word operations.
// * gate form, for synthesis (under SYNTHESIS unless BB_PE_WORDS is defined, or wherever BB_PE_GATES is
//   defined: the unit bench): c = popcount(a XNOR w) by full adders over lane triples (the XNOR
//   folded in: each output bit is one LUT6 of the six operand bits), then a balanced tree of adders at their
//   exact widths, each node `keep` (`BB_KEEP) so that Yosys maps every adder to its own carry chain instead
//   of merging the tree into one $macc (which ABC maps into ~30% more LUTs); the branch value 2c - W is
//   narrow (FW + 1 bits), for W a power of two without a subtractor, and is shifted at that width; the P
//   shifted values are summed at the width they need before one 32-bit add into the accumulator. About
//   2.8 LUTs per binary lane on the xilinx target (docs/cost.md), against ~5.9 and 20 DSP blocks for the
//   word form. Icarus runs it ~30x slower than the word form (hundreds of small nets per PE), which is why
//   the core's simulations use the word form.
`timescale 1ns/1ps
`include "bb_automatic.vh"
`ifdef SYNTHESIS
`ifndef BB_PE_WORDS
`define BB_PE_GATES
`endif
`endif
module bb_pe #(
    parameter W = 64,
    parameter P = 1
) (
    input  wire            clk,
    input  wire            en,
    input  wire            first,
    input  wire            use_init,
    input  wire [31:0]     init,
    input  wire [P*W-1:0]  a,
    input  wire [P*W-1:0]  w,
    input  wire [P*4-1:0]  shift,
    input  wire [P-1:0]    bvalid,
    output reg  [31:0]     acc
);
`ifndef BB_PE_GATES
    localparam NW = W / 64;

    // One branch: (W - 2 * popcount(a XOR w)) << shift, in int32. The popcount is an adder tree written as
    // the usual bit-slice arithmetic on 64-bit words.
    function `BB_AUTOMATIC [31:0] branch;
        input [W-1:0] a;
        input [W-1:0] w;
        input [3:0]   sh;
        reg [W-1:0] x;
        reg [63:0]  v;
        reg [31:0]  pc;
        integer n;
        begin
            x = a ^ w;
            pc = 32'd0;
            /*verilator unroll_full*/
            for (n = 0; n < NW; n = n + 1) begin
                v = x[64*n +: 64];
                v = v - ((v >> 1) & 64'h5555555555555555);
                v = (v & 64'h3333333333333333) + ((v >> 2) & 64'h3333333333333333);
                v = (v + (v >> 4)) & 64'h0f0f0f0f0f0f0f0f;
                v = v * 64'h0101010101010101;
                pc = pc + {25'd0, v[62:56]};
            end
            branch = (W - (pc << 1)) << sh;
        end
    endfunction

    reg [31:0] t;
    integer q;
    always @(posedge clk) begin
        if (en) begin
            if (first) t = use_init ? init : 32'd0;
            else       t = acc;
            /*verilator unroll_full*/
            for (q = 0; q < P; q = q + 1) begin
                if (bvalid[q]) t = t + branch(a[q*W +: W], w[q*W +: W], shift[q*4 +: 4]);
            end
            acc <= t;
        end
    end
`else
    localparam FW  = $clog2(W + 1);            // bits of a popcount (0..W)
    localparam VW  = FW + 1;                   // bits of a branch value, signed (-W..W)
    localparam SW0 = VW + 15 + $clog2(P);      // bits of the sum of P values shifted by 0..15
    localparam SW  = SW0 > 32 ? 32 : SW0;

    // popcount(a XNOR w) of branch q (the bits where a and w agree) on pc[q*FW +: FW]: leaf g counts lanes
    // 3g..3g+2 (a full adder, 2 bits);
    // node i of the heap (1 <= i < NGP) is child 2i + child 2i+1, children i >= NGP being the leaves i - NGP.
    localparam NG  = (W + 2) / 3;              // lane triples
    localparam NGP = 1 << $clog2(NG);          // leaves, zeros past NG
    wire [P*FW-1:0] pc;
    genvar gq, gg;
    generate
        for (gq = 0; gq < P; gq = gq + 1) begin : br
            wire [3*NG-1:0] x;
            wire [2*NGP-1:0] lf;
            `BB_KEEP wire [NGP*FW-1:0] node;   // node i at [i*FW +: FW]; [FW-1:0] unused
            assign x[W-1:0] = a[gq*W +: W] ~^ w[gq*W +: W];   // equal bits
            if (3 * NG > W) begin : pad
                assign x[3*NG-1:W] = {(3*NG-W){1'b0}};
            end
            for (gg = 0; gg < NGP; gg = gg + 1) begin : leaf
                if (gg < NG) begin : fa
                    assign lf[2*gg +: 2] = {(x[3*gg] & x[3*gg+1]) | (x[3*gg] & x[3*gg+2]) | (x[3*gg+1] & x[3*gg+2]),
                                            x[3*gg] ^ x[3*gg+1] ^ x[3*gg+2]};
                end else begin : zero
                    assign lf[2*gg +: 2] = 2'b00;
                end
            end
            assign node[FW-1:0] = {FW{1'b0}};
            for (gg = 1; gg < NGP; gg = gg + 1) begin : add
                // node gg sums CNT = NGP >> floor(log2 gg) leaves: at most min(W, 3 CNT), NB bits; a child at
                // most min(W, 3 CNT / 2), NC bits
                localparam integer CNT = NGP >> ($clog2(gg + 1) - 1);
                localparam integer NB = $clog2((3 * CNT > W ? W : 3 * CNT) + 1);
                localparam integer NC = $clog2((3 * CNT / 2 > W ? W : 3 * CNT / 2) + 1);
                if (2 * gg >= NGP) begin : bottom
                    assign node[gg*FW +: NB] = lf[2*(2*gg-NGP) +: 2] + lf[2*(2*gg+1-NGP) +: 2];
                end else begin : inner
                    assign node[gg*FW +: NB] = node[2*gg*FW +: NC] + node[(2*gg+1)*FW +: NC];
                end
                if (NB < FW) begin : hi
                    assign node[gg*FW+NB +: FW-NB] = {(FW-NB){1'b0}};
                end
            end
            assign pc[gq*FW +: FW] = node[FW +: FW];
        end
    endgenerate

    reg [FW-1:0]   c;
    reg [VW-1:0]   v;       // 2c - W = W - 2 popcount(a XOR w), or 0 for an invalid branch
    reg [SW-1:0]   y;       // v << shift
    reg [SW-1:0]   sum;
    reg [31:0]     t;
    integer q;
    always @(posedge clk) begin
        if (en) begin
            sum = {SW{1'b0}};
            for (q = 0; q < P; q = q + 1) begin
                c = pc[q*FW +: FW];
                // c counts the equal bits here: W - 2 (W - c) = 2c - W; for W = 2^(FW-1), c - W/2 is c with bit
                // FW-2 flipped and sign-extended (c = W: +W/2), no subtractor
                if (W == 1 << (FW - 1)) v = {~c[FW-1] & ~c[FW-2], ~c[FW-2], c[FW-3:0], 1'b0};
                else                    v = {c, 1'b0} - W;
                if (!bvalid[q]) v = {VW{1'b0}};
                y = {{(SW-VW+1){v[VW-1]}}, v[VW-2:0]} << shift[q*4 +: 4];
                sum = sum + y;
            end
            if (first) t = use_init ? init : 32'd0;
            else       t = acc;
            acc <= {{(33-SW){sum[SW-1]}}, sum[SW-2:0]} + t;
        end
    end
`endif
endmodule
`undef BB_PE_GATES
