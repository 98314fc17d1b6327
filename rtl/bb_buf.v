// bb_buf: one on-chip buffer (INP, WGT, ACC, OUT or CONST): DEPTH entries of EBYTES bytes.
//
// Ports: a DMA write port (B byte lanes at a flat byte address, per-lane enable; used by LOAD), a DMA
// read port (B bytes at a flat byte address; used by STORE), NRD compute read ports (whole entries) and
// NWR compute write ports (whole entries under one shared bit mask, so REQUANT and POOL can write one
// C-lane slice of a word; the data comes from one of up to three sources, `wr_src` picks it, so the
// producers need no multiplexer of their own), and a plane read group for INP (NXR rows of NXP ports; port
// (r, j) reads entry xr_base[r] + j when row r is enabled and j < xr_n: the planes of a pixel that POOL and
// REQUANT need beyond the NRD ports BGEMM uses, so the BGEMM cycles skip them with one test and the compute
// unit sends one base address per row instead of one per port). Reads are synchronous: data is registered
// at the end of the cycle the port is enabled and holds until the port is enabled again. A port whose
// enables are tied to 0 costs nothing.
// Flat byte address = entry * EBYTES + byte; EBYTES must be a power of two (checked by bb_core).
// `clear` zeroes every entry (the benches start each program from zeroed buffers, as the simulator does;
// a chip would not need it).
`timescale 1ns/1ps
module bb_buf #(
    parameter DEPTH  = 1024,
    parameter EBYTES = 8,
    parameter B      = 8,
    parameter NRD    = 1,
    parameter NWR    = 1,
    parameter NXR    = 1,    // plane read group: rows (its enables may be tied to 0)
    parameter NXP    = 1,    // plane read group: ports per row
    parameter AW     = 10,   // entry address bits ($clog2(DEPTH), at least 1)
    parameter FAW    = 13    // flat byte address bits (AW + $clog2(EBYTES))
) (
    input  wire                    clk,
    input  wire                    clear,
    // DMA write (load)
    input  wire                    dw_en,
    input  wire [FAW-1:0]          dw_addr,
    input  wire [B-1:0]            dw_mask,
    input  wire [8*B-1:0]          dw_data,
    // DMA read (store)
    input  wire                    dr_en,
    input  wire [FAW-1:0]          dr_addr,
    output reg  [8*B-1:0]          dr_data,
    // compute reads
    input  wire [NRD-1:0]          rd_en,
    input  wire [NRD*AW-1:0]       rd_addr,
    output wire [NRD*8*EBYTES-1:0] rd_data,
    // plane read group
    input  wire [NXR-1:0]          xr_en,
    input  wire [NXR*AW-1:0]       xr_base,
    input  wire [3:0]              xr_n,
    output wire [NXR*NXP*8*EBYTES-1:0] xr_data,
    // compute writes
    input  wire [NWR-1:0]          wr_en,
    input  wire [NWR*AW-1:0]       wr_addr,
    input  wire [1:0]              wr_src,
    input  wire [NWR*8*EBYTES-1:0] wr_data0,
    input  wire [NWR*8*EBYTES-1:0] wr_data1,
    input  wire [NWR*8*EBYTES-1:0] wr_data2,
    input  wire [8*EBYTES-1:0]     wr_mask
);
    localparam WIDTH = 8 * EBYTES;
    localparam EB = $clog2(EBYTES);

    reg [WIDTH-1:0] mem [0:DEPTH-1];
    // The compute read ports' data registers, one array element per port: a non-blocking write to an
    // element of an unpacked array costs Verilator one queued element, whereas a non-blocking write into a
    // slice of the packed `rd_data` bus made it copy the whole bus (ACC: 8 kbit) twice every cycle.
    reg [WIDTH-1:0] rq [0:NRD-1];
    reg [WIDTH-1:0] rqx [0:NXR*NXP-1];
    genvar gk;
    generate
        for (gk = 0; gk < NRD; gk = gk + 1) begin : rport
            assign rd_data[gk*WIDTH +: WIDTH] = rq[gk];
        end
        for (gk = 0; gk < NXR*NXP; gk = gk + 1) begin : xport
            assign xr_data[gk*WIDTH +: WIDTH] = rqx[gk];
        end
    endgenerate

    integer i;
    initial begin
        for (i = 0; i < DEPTH; i = i + 1) mem[i] = {WIDTH{1'b0}};
    end

    // All accesses to `mem` are in this one process: reads first (they see the entries as they were before
    // this edge), then the writes, as blocking assignments. The result is the same as a RAM with
    // read-before-write ports, and the simulator needs no per-cycle shadow copies of wide entries.
    integer k, j;
    reg [FAW-1:0] fa;
    reg [AW-1:0]  a;
    always @(posedge clk) begin
        if (dr_en) begin
            for (k = 0; k < B; k = k + 1) begin
                fa = dr_addr + k[FAW-1:0];
                dr_data[8*k +: 8] <= mem[fa[FAW-1:EB]][8*fa[EB-1:0] +: 8];
            end
        end
        if (|rd_en) begin
            /*verilator unroll_full*/
            for (k = 0; k < NRD; k = k + 1) begin
                if (rd_en[k]) rq[k] <= mem[rd_addr[k*AW +: AW]];
            end
        end
        if (|xr_en) begin
            for (k = 0; k < NXR; k = k + 1) begin
                if (xr_en[k]) begin
                    for (j = 0; j < NXP; j = j + 1) begin
                        a = xr_base[k*AW +: AW] + j[AW-1:0];
                        if (j < xr_n) rqx[k*NXP+j] <= mem[a];
                    end
                end
            end
        end
        if (clear) begin
            for (k = 0; k < DEPTH; k = k + 1) mem[k] = {WIDTH{1'b0}};
        end
        if (dw_en) begin
            for (k = 0; k < B; k = k + 1) begin
                if (dw_mask[k]) begin
                    fa = dw_addr + k[FAW-1:0];
                    mem[fa[FAW-1:EB]][8*fa[EB-1:0] +: 8] = dw_data[8*k +: 8];
                end
            end
        end
        for (k = 0; k < NWR && (|wr_en); k = k + 1) begin
            if (wr_en[k]) begin
                a = wr_addr[k*AW +: AW];
                mem[a] = (mem[a] & ~wr_mask) | (wr_mask & ((wr_src == 2'd1) ? wr_data1[k*WIDTH +: WIDTH]
                                                        : (wr_src == 2'd2) ? wr_data2[k*WIDTH +: WIDTH]
                                                        : wr_data0[k*WIDTH +: WIDTH]));
            end
        end
    end
endmodule
