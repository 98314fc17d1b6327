// fx_dataloop: a `for` whose bound is an input (data-dependent), as at bb_buf.v:121 today: not
// synthesizable. Fixture of tests/test_synth.py: synthesis must fail with one clear error line.
module fx_dataloop #(
    parameter WIDTH = 16
) (
    input  wire             clk,
    input  wire [3:0]       n,
    input  wire [WIDTH-1:0] d,
    output reg  [WIDTH-1:0] q
);
    integer k;
    always @(posedge clk) begin
        for (k = 0; k < n; k = k + 1) q[k] <= d[k];
    end
endmodule
