// bb_dram: behavioural DRAM with one port shared by the load and store units (docs/timing.md section 5).
//
// Arbitration: `ld_req`/`st_req` are registered requests (raised at the cycle a DMA starts, so visible
// from the next cycle: a request raised at t competes from t + 1). At a cycle where the port is free the
// load request wins over the store request; the grant is combinational and the winner holds the port
// until its engine signals `rel` in the last cycle of its hold. Reads: a request at cycle c returns its
// B bytes (lanes outside `rd_mask` read as 0) and its opaque tag at cycle c + DRAM_LATENCY. Writes are
// applied at the end of the cycle they are presented (the latency of a STORE is the engine's tail).
// The memory is 2^AWD bytes held as 64-bit little-endian words, loaded by $readmemh from `+dram=FILE` (one
// word per line) at time 0 and on `reload`, and written back by $writememh to `+dram_out=FILE` (the words
// holding bytes 0 .. dump_size-1) when `dump` is raised.
`timescale 1ns/1ps
module bb_dram #(
    parameter DRAM_LATENCY = 8,
    parameter B            = 8,
    parameter AWD          = 24,
    parameter TAGW         = 8
) (
    input  wire            clk,
    input  wire            rst,
    input  wire            reload,
    // arbitration
    input  wire            ld_req,
    input  wire            st_req,
    output wire            ld_gnt,
    output wire            st_gnt,
    input  wire            rel,
    // reads (load unit)
    input  wire            rd_en,
    input  wire [31:0]     rd_addr,
    input  wire [B-1:0]    rd_mask,
    input  wire [TAGW-1:0] rd_tag,
    output reg             rsp_valid,
    output reg  [8*B-1:0]  rsp_data,
    output reg  [TAGW-1:0] rsp_tag,
    // writes (store unit)
    input  wire            wr_en,
    input  wire [31:0]     wr_addr,
    input  wire [B-1:0]    wr_mask,
    input  wire [8*B-1:0]  wr_data,
    // image dump
    input  wire            dump,
    input  wire [32:0]     dump_size
);
    reg [63:0] mem [0:(1 << (AWD - 3)) - 1];
    reg [8*1024-1:0] dram_file;
    reg [8*1024-1:0] dump_file;
    reg              have_dram_file;
    reg              have_dump_file;
    initial begin
        have_dram_file = $value$plusargs("dram=%s", dram_file);
        if (have_dram_file) $readmemh(dram_file, mem);
        have_dump_file = $value$plusargs("dram_out=%s", dump_file);
    end
    always @(posedge clk) if (reload && have_dram_file) $readmemh(dram_file, mem);

    // ---- arbitration ----------------------------------------------------------------------------------
    reg busy;
    assign ld_gnt = !busy && ld_req;
    assign st_gnt = !busy && !ld_req && st_req;
    always @(posedge clk) begin
        if (rst) busy <= 1'b0;
        else if (ld_gnt || st_gnt) busy <= 1'b1;
        else if (rel) busy <= 1'b0;
    end

    // ---- read pipeline: DRAM_LATENCY - 1 delay slots, then a registered read ----------------------
    localparam PIPE = DRAM_LATENCY - 1;
    localparam PW   = (PIPE > 1) ? $clog2(PIPE) : 1;
    localparam RW   = 1 + 32 + B + TAGW;

    wire [RW-1:0] req_in = {rd_en, rd_addr, rd_mask, rd_tag};
    wire [RW-1:0] req_out;
    generate
        if (PIPE == 0) begin : g_direct
            assign req_out = req_in;
        end else begin : g_ring
            reg [RW-1:0] ring [0:PIPE-1];
            reg [PW-1:0] ptr;
            integer n;
            initial for (n = 0; n < PIPE; n = n + 1) ring[n] = {RW{1'b0}};
            assign req_out = ring[ptr];
            always @(posedge clk) begin
                if (rst) ptr <= {PW{1'b0}};
                else ptr <= ({1'b0, ptr} == PIPE - 1) ? {PW{1'b0}} : ptr + 1'b1;
                ring[ptr] <= rst ? {RW{1'b0}} : req_in;
            end
        end
    endgenerate

    wire            q_valid = req_out[RW-1];
    wire [31:0]     q_addr  = req_out[RW-2 -: 32];
    wire [B-1:0]    q_mask  = req_out[TAGW +: B];
    wire [TAGW-1:0] q_tag   = req_out[TAGW-1:0];

    integer k;
    reg [31:0] a;
    always @(posedge clk) begin
        rsp_valid <= !rst && q_valid;
        if (q_valid) begin
            rsp_tag <= q_tag;
            for (k = 0; k < B; k = k + 1) begin
                a = q_addr + k;
                rsp_data[8*k +: 8] <= q_mask[k] ? mem[a[AWD-1:3]][8*a[2:0] +: 8] : 8'd0;
            end
        end
        if (wr_en) begin  // after the read above, blocking: all run-time accesses to `mem` are in this process
            for (k = 0; k < B; k = k + 1) begin
                if (wr_mask[k]) begin
                    a = wr_addr + k;
                    mem[a[AWD-1:3]][8*a[2:0] +: 8] = wr_data[8*k +: 8];
                end
            end
        end
        if (dump && have_dump_file && dump_size != 33'd0)
            $writememh(dump_file, mem, 0, (dump_size - 1) >> 3);
    end
endmodule
