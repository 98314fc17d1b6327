// bb_sram_2p: one SRAM bank with two ports, A and B. Each port does one read or one write per cycle
// (`*_en` with `*_we` = 0 reads, = 1 writes). Writes are masked in granules of GA (port A) and GB (port B)
// bits, reads are synchronous (data registered at the end of the cycle, held until the port reads again).
// This is what an SRAM macro (2RW, or 1R+1W when one port only reads and the other only writes) provides;
// every on-chip buffer of bb_core is built from these banks, nothing else (docs/rtl.md, "Memory system").
//
// Both ports' reads come first in the one process that owns `mem` (one per column, below), then the writes
// (blocking): a read and a write of the same entry in one cycle read the old data (read-before-write), and no
// shadow copy of the array is needed in Verilator. Simultaneous writes of the same entry from both ports do not happen in race-free
// programs (docs/timing.md section 7); port B's wins here.
// A_RD/A_WR/B_RD/B_WR = 0 leave out what a port never does where the bank is used (its enable/write inputs
// are tied so that it cannot happen): a bank that LOAD writes on port A and the compute unit only reads on
// port B is a 1R+1W macro, and synthesis, which maps each bank module once without looking across the
// hierarchy, reports it as one (docs/rtl.md, "Synthesis").
// `clear` (zero every entry in one cycle) exists only when BB_SIM_CLEAR is defined: the benches define it to
// start each program from zeroed buffers as the simulator does; the synthesized core never has it.
`timescale 1ns/1ps
module bb_sram_2p #(
    parameter DEPTH = 64,
    parameter WIDTH = 64,
    parameter AW    = 6,     // address bits ($clog2(DEPTH), at least 1)
    parameter GA    = 8,     // port A write granule (bits); WIDTH % GA == 0
    parameter GB    = 64,    // port B write granule (bits); WIDTH % GB == 0
    parameter A_RD  = 1,     // port A reads (0: a_rdata is never loaded)
    parameter A_WR  = 1,     // port A writes
    parameter B_RD  = 1,     // port B reads (0: b_rdata is never loaded)
    parameter B_WR  = 1      // port B writes
) (
    input  wire                  clk,
    input  wire                  clear,
    input  wire                  a_en,
    input  wire                  a_we,
    input  wire [AW-1:0]         a_addr,
    input  wire [WIDTH/GA-1:0]   a_mask,
    input  wire [WIDTH-1:0]      a_wdata,
    output wire [WIDTH-1:0]      a_rdata,
    input  wire                  b_en,
    input  wire                  b_we,
    input  wire [AW-1:0]         b_addr,
    input  wire [WIDTH/GB-1:0]   b_mask,
    input  wire [WIDTH-1:0]      b_wdata,
    output wire [WIDTH-1:0]      b_rdata
);
    // Columns: a bank wider than 64 bits is ganged from 64-bit macros (column c holds bits c*CW .. c*CW+CW-1
    // of every entry), each its own array and process. Same behaviour as one wide array; Yosys processes a
    // masked write in time that grows with (granules x width) per array, which for one 2048-bit array with
    // byte granules took most of an hour (docs/rtl.md, "Synthesis"). One column when the granules do not
    // fit 64-bit columns.
    localparam CW = (WIDTH > 64 && WIDTH % 64 == 0 && 64 % GA == 0 && (64 % GB == 0 || GB % 64 == 0))
                    ? 64 : WIDTH;
    localparam NC = WIDTH / CW;
    localparam GBC = (GB < CW) ? GB : CW;   // port B write granule within a column

    genvar c;
    generate
        for (c = 0; c < NC; c = c + 1) begin : col
            reg [CW-1:0] mem [0:DEPTH-1];
            reg [CW-1:0] ra, rb;
            integer i;
            assign a_rdata[c*CW +: CW] = ra;
            assign b_rdata[c*CW +: CW] = rb;

`ifndef SYNTHESIS
            // buffers start as all zeros (docs/timing.md section 7); a chip's power-up contents are undefined
            initial begin
                for (i = 0; i < DEPTH; i = i + 1) mem[i] = {CW{1'b0}};
            end
`endif

            always @(posedge clk) begin
                // (a constant `if` of its own, so Yosys drops the port: a constant operand of && is not folded)
                if (A_RD) if (a_en && !a_we) ra <= mem[a_addr];
                if (B_RD) if (b_en && !b_we) rb <= mem[b_addr];
`ifdef BB_SIM_CLEAR
                if (clear) begin
                    for (i = 0; i < DEPTH; i = i + 1) mem[i] = {CW{1'b0}};
                end
`endif
                if (A_WR) if (a_en && a_we) begin
`ifdef VERILATOR
                    // every granule enabled (a whole DMA beat): the loop's effect in one step (simulation speed
                    // only; the loop costs an iteration per byte on every beat into the 128 INP banks)
                    if (&a_mask[c*(CW/GA) +: CW/GA]) mem[a_addr] = a_wdata[c*CW +: CW];
                    else
`endif
                    for (i = 0; i < CW / GA; i = i + 1) begin
                        if (a_mask[c*(CW/GA) + i]) mem[a_addr][i*GA +: GA] = a_wdata[c*CW + i*GA +: GA];
                    end
                end
                if (B_WR) if (b_en && b_we) begin
                    for (i = 0; i < CW / GBC; i = i + 1) begin
                        if (b_mask[(c*CW + i*GBC) / GB]) mem[b_addr][i*GBC +: GBC] = b_wdata[c*CW + i*GBC +: GBC];
                    end
                end
            end
        end
    endgenerate
endmodule
