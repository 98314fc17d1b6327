// fx_ram3p: a RAM with two synchronous read ports and one write port (3 ports: not one SRAM macro).
// Fixture of tests/test_synth.py: synthesis reports one memory with 2 read + 1 write ports.
module fx_ram3p #(
    parameter DEPTH = 256,
    parameter WIDTH = 32,
    parameter AW    = 8
) (
    input  wire             clk,
    input  wire             we,
    input  wire [AW-1:0]    waddr,
    input  wire [WIDTH-1:0] wdata,
    input  wire [AW-1:0]    raddr0,
    input  wire [AW-1:0]    raddr1,
    output reg  [WIDTH-1:0] rdata0,
    output reg  [WIDTH-1:0] rdata1
);
    reg [WIDTH-1:0] mem [0:DEPTH-1];
    always @(posedge clk) begin
        if (we) mem[waddr] <= wdata;
        rdata0 <= mem[raddr0];
        rdata1 <= mem[raddr1];
    end
endmodule
