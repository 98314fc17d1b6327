// fx_regfile: an array that cannot stay a memory: a clear of every entry by blocking assignments in a loop
// over all addresses (as today's bb_buf does) makes Yosys's front end turn it into DEPTH*WIDTH flip-flops
// (mem2reg).
// Fixture of tests/test_synth.py.
module fx_regfile #(
    parameter DEPTH = 64,
    parameter WIDTH = 16,
    parameter AW    = 6
) (
    input  wire             clk,
    input  wire             clear,
    input  wire             we,
    input  wire [AW-1:0]    waddr,
    input  wire [WIDTH-1:0] wdata,
    input  wire [AW-1:0]    raddr,
    output reg  [WIDTH-1:0] rdata
);
    reg [WIDTH-1:0] mem [0:DEPTH-1];
    integer k;
    always @(posedge clk) begin
        if (clear) begin
            for (k = 0; k < DEPTH; k = k + 1) mem[k] = {WIDTH{1'b0}};
        end else if (we) mem[waddr] = wdata;
        rdata <= mem[raddr];
    end
endmodule
