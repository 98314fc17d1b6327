// bb_sram_2p: one SRAM bank with two ports, A and B. Each port does one read or one write per cycle
// (`*_en` with `*_we` = 0 reads, = 1 writes). Writes are masked in granules of GA (port A) and GB (port B)
// bits, reads are synchronous (data registered at the end of the cycle, held until the port reads again).
// This is what an SRAM macro (2RW, or 1R+1W when one port only reads and the other only writes) provides;
// every on-chip buffer of bb_core is built from these banks, nothing else (docs/rtl.md, "Memory system").
//
// Both ports' reads come first in the one process that owns `mem`, then the writes (blocking): a read and a
// write of the same entry in one cycle read the old data (read-before-write), and Verilator needs no shadow
// copy of the array. Simultaneous writes of the same entry from both ports do not happen in race-free
// programs (docs/timing.md section 7); port B's wins here.
// `clear` (zero every entry in one cycle) exists only when BB_SIM_CLEAR is defined: the benches define it to
// start each program from zeroed buffers as the simulator does; the synthesized core never has it.
`timescale 1ns/1ps
module bb_sram_2p #(
    parameter DEPTH = 64,
    parameter WIDTH = 64,
    parameter AW    = 6,     // address bits ($clog2(DEPTH), at least 1)
    parameter GA    = 8,     // port A write granule (bits); WIDTH % GA == 0
    parameter GB    = 64     // port B write granule (bits); WIDTH % GB == 0
) (
    input  wire                  clk,
    input  wire                  clear,
    input  wire                  a_en,
    input  wire                  a_we,
    input  wire [AW-1:0]         a_addr,
    input  wire [WIDTH/GA-1:0]   a_mask,
    input  wire [WIDTH-1:0]      a_wdata,
    output reg  [WIDTH-1:0]      a_rdata,
    input  wire                  b_en,
    input  wire                  b_we,
    input  wire [AW-1:0]         b_addr,
    input  wire [WIDTH/GB-1:0]   b_mask,
    input  wire [WIDTH-1:0]      b_wdata,
    output reg  [WIDTH-1:0]      b_rdata
);
    reg [WIDTH-1:0] mem [0:DEPTH-1];
    integer i;

`ifndef SYNTHESIS
    // buffers start as all zeros (docs/timing.md section 7); a chip's power-up contents are undefined
    initial begin
        for (i = 0; i < DEPTH; i = i + 1) mem[i] = {WIDTH{1'b0}};
    end
`endif

    always @(posedge clk) begin
        if (a_en && !a_we) a_rdata <= mem[a_addr];
        if (b_en && !b_we) b_rdata <= mem[b_addr];
`ifdef BB_SIM_CLEAR
        if (clear) begin
            for (i = 0; i < DEPTH; i = i + 1) mem[i] = {WIDTH{1'b0}};
        end
`endif
        if (a_en && a_we) begin
            for (i = 0; i < WIDTH / GA; i = i + 1) begin
                if (a_mask[i]) mem[a_addr][i*GA +: GA] = a_wdata[i*GA +: GA];
            end
        end
        if (b_en && b_we) begin
            for (i = 0; i < WIDTH / GB; i = i + 1) begin
                if (b_mask[i]) mem[b_addr][i*GB +: GB] = b_wdata[i*GB +: GB];
            end
        end
    end
endmodule
