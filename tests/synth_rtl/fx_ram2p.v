// fx_ram2p: a simple dual-port RAM (one synchronous read port, one write port with a byte mask), the shape
// every buffer must take to be buildable. Fixture of tests/test_synth.py.
module fx_ram2p #(
    parameter DEPTH = 256,
    parameter WIDTH = 32,
    parameter AW    = 8
) (
    input  wire               clk,
    input  wire               we,
    input  wire [AW-1:0]      waddr,
    input  wire [WIDTH-1:0]   wdata,
    input  wire [WIDTH/8-1:0] wmask,
    input  wire               re,
    input  wire [AW-1:0]      raddr,
    output reg  [WIDTH-1:0]   rdata
);
    reg [WIDTH-1:0] mem [0:DEPTH-1];
    integer b;
    always @(posedge clk) begin
        if (we)
            for (b = 0; b < WIDTH / 8; b = b + 1)
                if (wmask[b]) mem[waddr][8*b +: 8] <= wdata[8*b +: 8];
        if (re) rdata <= mem[raddr];
    end
endmodule
