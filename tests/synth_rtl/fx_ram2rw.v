// fx_ram2rw: a true dual-port RAM (two ports, each a registered read or a masked write per cycle), the
// 2RW macro shape. Yosys models each port as a read port plus a write port on the same address, so it
// reports 2 read + 2 write ports; `bitbranch synth` pairs them into 2 read/write ports.
// Fixture of tests/test_synth.py.
module fx_ram2rw #(
    parameter DEPTH = 128,
    parameter WIDTH = 32,
    parameter AW    = 7
) (
    input  wire               clk,
    input  wire               a_en,
    input  wire               a_we,
    input  wire [AW-1:0]      a_addr,
    input  wire [WIDTH/8-1:0] a_mask,
    input  wire [WIDTH-1:0]   a_wdata,
    output reg  [WIDTH-1:0]   a_rdata,
    input  wire               b_en,
    input  wire               b_we,
    input  wire [AW-1:0]      b_addr,
    input  wire [WIDTH/8-1:0] b_mask,
    input  wire [WIDTH-1:0]   b_wdata,
    output reg  [WIDTH-1:0]   b_rdata
);
    reg [WIDTH-1:0] mem [0:DEPTH-1];
    integer i;
    always @(posedge clk) begin
        if (a_en) begin
            if (a_we) begin
                for (i = 0; i < WIDTH / 8; i = i + 1)
                    if (a_mask[i]) mem[a_addr][8*i +: 8] <= a_wdata[8*i +: 8];
            end else a_rdata <= mem[a_addr];
        end
        if (b_en) begin
            if (b_we) begin
                for (i = 0; i < WIDTH / 8; i = i + 1)
                    if (b_mask[i]) mem[b_addr][8*i +: 8] <= b_wdata[8*i +: 8];
            end else b_rdata <= mem[b_addr];
        end
    end
endmodule
