// bb_decode: the instruction decoder and checker (fetch's decode stage).
//
// Combinationally decodes one INSN_BITS word with the field positions, legal ranges and enum masks of the
// generated include (rtl/bitbranch_isa.vh) and checks it the way isa.validate does, in the same order, so
// the first failing check gives the same error class: unknown opcode, reserved bits, field ranges, token
// flags, cross-field rules, buffer and DRAM extents (in access order), finish placement. On `en` the
// word, its executing unit and its status code (rtl/bb_status.vh) are registered.
`timescale 1ns/1ps
`include "bitbranch_isa.vh"
`include "bb_status.vh"
`include "bb_automatic.vh"
module bb_decode #(
    parameter ARRAY_COLS    = 4,
    parameter WORD_BITS     = 64,
    parameter INP_ENTRIES   = 1024,
    parameter WGT_ENTRIES   = 256,
    parameter ACC_ENTRIES   = 256,
    parameter OUT_ENTRIES   = 512,
    parameter CONST_ENTRIES = 64
) (
    input  wire                    clk,
    input  wire                    en,
    input  wire [`BB_INSN_BITS-1:0] word,
    input  wire                    is_last,    // word is the program's last instruction
    input  wire [32:0]             dram_size,  // bytes in the DRAM image
    output wire [1:0]              unit,       // combinational results ...
    output wire [3:0]              status,
    output reg  [`BB_INSN_BITS-1:0] word_q,    // ... and registered on `en`
    output reg  [1:0]              unit_q,
    output reg  [3:0]              status_q
);
    // Entry bytes of each buffer (the same derivation as isa.hwconfig.HwConfig.entry_bytes).
    localparam E_INP   = WORD_BITS / 8;
    localparam E_WGT   = ARRAY_COLS * WORD_BITS / 8;
    localparam E_ACC   = ARRAY_COLS * 4;
    localparam E_OUT   = WORD_BITS / 8;
    localparam E_CONST = ARRAY_COLS * `BB_CONST_BYTES_PER_LANE;
    localparam SLICES  = WORD_BITS / ARRAY_COLS;

    // The decoder as a function: bb_fetch calls it only when it loads a new word (the simulator then
    // evaluates it once per instruction); `unit` and `status` below show it combinationally (unit bench).
    // It must be automatic for that: Verilator keeps every call of a static function, and would then
    // evaluate the unused combinational copy in every cycle.
    function `BB_AUTOMATIC [5:0] check;  // {unit, status}
        input [`BB_INSN_BITS-1:0] w;
        input                     is_last;
        input [32:0]              dram_size;
        reg [3:0] op;
        reg [3:0] flags;
        reg is_load;
        reg is_store;
        reg is_bgemm;
        reg is_requant;
        reg is_pool;
        reg is_sync;
        reg is_finish;
        reg known;
        reg reserved;
        reg [2:0]  l_buf;
        reg [15:0] l_sram;
        reg [31:0] l_dram;
        reg [15:0] l_rows;
        reg [15:0] l_len;
        reg [31:0] l_dstr;
        reg [15:0] l_sstr;
        reg [7:0]  l_pt;
        reg [7:0]  l_pb;
        reg [15:0] l_pl;
        reg [15:0] l_pr;
        reg [2:0]  s_buf;
        reg [15:0] s_sram;
        reg [31:0] s_dram;
        reg [15:0] s_rows;
        reg [15:0] s_len;
        reg [31:0] s_dstr;
        reg [15:0] s_sstr;
        reg g_accum;
        reg g_wmode;
        reg [3:0]  g_kbits;
        reg [3:0]  g_mbits;
        reg [15:0] g_acc;
        reg [15:0] g_inp;
        reg [15:0] g_wgt;
        reg [11:0] g_oh;
        reg [11:0] g_ow;
        reg [3:0]  g_kh;
        reg [3:0]  g_kw;
        reg [3:0]  g_str;
        reg [3:0]  g_dil;
        reg [11:0] g_cw;
        reg [7:0]  g_ct;
        reg [15:0] g_irow;
        reg [15:0] g_ipix;
        reg r_dest;
        reg r_res;
        reg [15:0] r_acc;
        reg [15:0] r_n;
        reg [15:0] r_const;
        reg [15:0] r_out;
        reg [15:0] r_ostr;
        reg [3:0]  r_slice;
        reg [3:0]  r_kout;
        reg [5:0]  r_shift;
        reg [7:0]  r_lo;
        reg [7:0]  r_hi;
        reg [15:0] r_rinp;
        reg [15:0] r_rstr;
        reg [3:0]  r_rk;
        reg p_mode;
        reg [3:0]  p_k;
        reg [3:0]  p_slice;
        reg [15:0] p_inp;
        reg [11:0] p_oh;
        reg [11:0] p_ow;
        reg [3:0]  p_kh;
        reg [3:0]  p_kw;
        reg [3:0]  p_str;
        reg [15:0] p_irow;
        reg [15:0] p_ipix;
        reg [15:0] p_out;
        reg [15:0] p_ostr;
        reg [15:0] p_acc;
        reg [1:0]  y_unit;
        reg [7:0] l_buf_ok_mask;
        reg [7:0] s_buf_ok_mask;
        reg [1:0] wmode_ok_mask;
        reg [1:0] dest_ok_mask;
        reg [1:0] mode_ok_mask;
        reg [3:0] unit_ok_mask;
        reg range_load;
        reg range_store;
        reg range_bgemm;
        reg range_requant;
        reg range_pool;
        reg range_sync;
        reg range_bad;
        reg [1:0] unit_w;
        reg [3:0] legal_flags;
        reg token_bad;
        reg [17:0] l_width;
        reg [17:0] l_sstep;
        reg [16:0] l_rowst;
        reg [15:0] s_sstep;
        reg [11:0] l_ebytes;
        reg [11:0] s_ebytes;
        reg [63:0] s_rowbytes;
        reg [23:0] p_pixels;
        reg [8:0]  r_top;
        reg cross_load;
        reg cross_store;
        reg cross_bgemm;
        reg cross_requant;
        reg cross_pool;
        reg cross_bad;
        reg [63:0] l_dram_last;
        reg [63:0] l_buf_last;
        reg [63:0] l_entries;
        reg [63:0] s_buf_last;
        reg [63:0] s_dram_last;
        reg [63:0] s_entries;
        reg [63:0] g_rows;
        reg [63:0] g_cols;
        reg [63:0] g_inp_last;
        reg [63:0] g_wgt_last;
        reg [63:0] g_acc_last;
        reg [63:0] r_acc_last;
        reg [63:0] r_inp_last;
        reg [63:0] r_out_last;
        reg [63:0] p_rows;
        reg [63:0] p_cols;
        reg [63:0] p_inp_last;
        reg [63:0] p_out_last;
        reg [63:0] p_acc_last;
        reg [63:0] dsize;
        reg l_dram_bad;
        reg s_dram_bad;
        reg l_buf_bad;
        reg s_buf_bad;
        reg g_buf_bad;
        reg r_buf_bad;
        reg p_buf_bad;
        reg [3:0] extent_status;
        reg finish_bad;
        begin
            op = w[`BB_OPCODE_W-1:0];
            flags = w[`BB_FLAGS_LSB +: `BB_FLAGS_W];
            is_load = op == `BB_OP_LOAD;
            is_store = op == `BB_OP_STORE;
            is_bgemm = op == `BB_OP_BGEMM;
            is_requant = op == `BB_OP_REQUANT;
            is_pool = op == `BB_OP_POOL;
            is_sync = op == `BB_OP_SYNC;
            is_finish = op == `BB_OP_FINISH;
            known = is_load | is_store | is_bgemm | is_requant | is_pool | is_sync | is_finish;
            // ---- reserved bits ------------------------------------------------------------------------------
            reserved = (is_load    && |(w >> `BB_LOAD_USED_BITS))
                      | (is_store   && |(w >> `BB_STORE_USED_BITS))
                      | (is_bgemm   && |(w >> `BB_BGEMM_USED_BITS))
                      | (is_requant && |(w >> `BB_REQUANT_USED_BITS))
                      | (is_pool    && |(w >> `BB_POOL_USED_BITS))
                      | (is_sync    && |(w >> `BB_SYNC_USED_BITS))
                      | (is_finish  && |(w >> `BB_FINISH_USED_BITS));
            // ---- fields ---------------------------------------------------------------------------------------
            l_buf = w[`BB_LOAD_BUF_MSB:`BB_LOAD_BUF_LSB];
            l_sram = w[`BB_LOAD_SRAM_MSB:`BB_LOAD_SRAM_LSB];
            l_dram = w[`BB_LOAD_DRAM_MSB:`BB_LOAD_DRAM_LSB];
            l_rows = w[`BB_LOAD_ROWS_MSB:`BB_LOAD_ROWS_LSB];
            l_len = w[`BB_LOAD_LEN_MSB:`BB_LOAD_LEN_LSB];
            l_dstr = w[`BB_LOAD_DSTRIDE_MSB:`BB_LOAD_DSTRIDE_LSB];
            l_sstr = w[`BB_LOAD_SSTRIDE_MSB:`BB_LOAD_SSTRIDE_LSB];
            l_pt = w[`BB_LOAD_PAD_TOP_MSB:`BB_LOAD_PAD_TOP_LSB];
            l_pb = w[`BB_LOAD_PAD_BOTTOM_MSB:`BB_LOAD_PAD_BOTTOM_LSB];
            l_pl = w[`BB_LOAD_PAD_LEFT_MSB:`BB_LOAD_PAD_LEFT_LSB];
            l_pr = w[`BB_LOAD_PAD_RIGHT_MSB:`BB_LOAD_PAD_RIGHT_LSB];
            s_buf = w[`BB_STORE_BUF_MSB:`BB_STORE_BUF_LSB];
            s_sram = w[`BB_STORE_SRAM_MSB:`BB_STORE_SRAM_LSB];
            s_dram = w[`BB_STORE_DRAM_MSB:`BB_STORE_DRAM_LSB];
            s_rows = w[`BB_STORE_ROWS_MSB:`BB_STORE_ROWS_LSB];
            s_len = w[`BB_STORE_LEN_MSB:`BB_STORE_LEN_LSB];
            s_dstr = w[`BB_STORE_DSTRIDE_MSB:`BB_STORE_DSTRIDE_LSB];
            s_sstr = w[`BB_STORE_SSTRIDE_MSB:`BB_STORE_SSTRIDE_LSB];
            g_accum = w[`BB_BGEMM_ACCUMULATE_LSB];
            g_wmode = w[`BB_BGEMM_WMODE_LSB];
            g_kbits = w[`BB_BGEMM_KBITS_MSB:`BB_BGEMM_KBITS_LSB];
            g_mbits = w[`BB_BGEMM_MBITS_MSB:`BB_BGEMM_MBITS_LSB];
            g_acc = w[`BB_BGEMM_ACC_MSB:`BB_BGEMM_ACC_LSB];
            g_inp = w[`BB_BGEMM_INP_MSB:`BB_BGEMM_INP_LSB];
            g_wgt = w[`BB_BGEMM_WGT_MSB:`BB_BGEMM_WGT_LSB];
            g_oh = w[`BB_BGEMM_OH_MSB:`BB_BGEMM_OH_LSB];
            g_ow = w[`BB_BGEMM_OW_MSB:`BB_BGEMM_OW_LSB];
            g_kh = w[`BB_BGEMM_KH_MSB:`BB_BGEMM_KH_LSB];
            g_kw = w[`BB_BGEMM_KW_MSB:`BB_BGEMM_KW_LSB];
            g_str = w[`BB_BGEMM_STRIDE_MSB:`BB_BGEMM_STRIDE_LSB];
            g_dil = w[`BB_BGEMM_DIL_MSB:`BB_BGEMM_DIL_LSB];
            g_cw = w[`BB_BGEMM_CW_MSB:`BB_BGEMM_CW_LSB];
            g_ct = w[`BB_BGEMM_CTILES_MSB:`BB_BGEMM_CTILES_LSB];
            g_irow = w[`BB_BGEMM_IROW_MSB:`BB_BGEMM_IROW_LSB];
            g_ipix = w[`BB_BGEMM_IPIX_MSB:`BB_BGEMM_IPIX_LSB];
            r_dest = w[`BB_REQUANT_DEST_LSB];
            r_res = w[`BB_REQUANT_RES_LSB];
            r_acc = w[`BB_REQUANT_ACC_MSB:`BB_REQUANT_ACC_LSB];
            r_n = w[`BB_REQUANT_N_MSB:`BB_REQUANT_N_LSB];
            r_const = w[`BB_REQUANT_CONST_MSB:`BB_REQUANT_CONST_LSB];
            r_out = w[`BB_REQUANT_OUT_MSB:`BB_REQUANT_OUT_LSB];
            r_ostr = w[`BB_REQUANT_OSTRIDE_MSB:`BB_REQUANT_OSTRIDE_LSB];
            r_slice = w[`BB_REQUANT_SLICE_MSB:`BB_REQUANT_SLICE_LSB];
            r_kout = w[`BB_REQUANT_KOUT_MSB:`BB_REQUANT_KOUT_LSB];
            r_shift = w[`BB_REQUANT_SHIFT_MSB:`BB_REQUANT_SHIFT_LSB];
            r_lo = w[`BB_REQUANT_LO_MSB:`BB_REQUANT_LO_LSB];
            r_hi = w[`BB_REQUANT_HI_MSB:`BB_REQUANT_HI_LSB];
            r_rinp = w[`BB_REQUANT_RINP_MSB:`BB_REQUANT_RINP_LSB];
            r_rstr = w[`BB_REQUANT_RSTRIDE_MSB:`BB_REQUANT_RSTRIDE_LSB];
            r_rk = w[`BB_REQUANT_RK_MSB:`BB_REQUANT_RK_LSB];
            p_mode = w[`BB_POOL_MODE_LSB];
            p_k = w[`BB_POOL_K_MSB:`BB_POOL_K_LSB];
            p_slice = w[`BB_POOL_SLICE_MSB:`BB_POOL_SLICE_LSB];
            p_inp = w[`BB_POOL_INP_MSB:`BB_POOL_INP_LSB];
            p_oh = w[`BB_POOL_OH_MSB:`BB_POOL_OH_LSB];
            p_ow = w[`BB_POOL_OW_MSB:`BB_POOL_OW_LSB];
            p_kh = w[`BB_POOL_KH_MSB:`BB_POOL_KH_LSB];
            p_kw = w[`BB_POOL_KW_MSB:`BB_POOL_KW_LSB];
            p_str = w[`BB_POOL_STRIDE_MSB:`BB_POOL_STRIDE_LSB];
            p_irow = w[`BB_POOL_IROW_MSB:`BB_POOL_IROW_LSB];
            p_ipix = w[`BB_POOL_IPIX_MSB:`BB_POOL_IPIX_LSB];
            p_out = w[`BB_POOL_OUT_MSB:`BB_POOL_OUT_LSB];
            p_ostr = w[`BB_POOL_OSTRIDE_MSB:`BB_POOL_OSTRIDE_LSB];
            p_acc = w[`BB_POOL_ACC_MSB:`BB_POOL_ACC_LSB];
            y_unit = w[`BB_SYNC_UNIT_MSB:`BB_SYNC_UNIT_LSB];
            // ---- field ranges and enums (fields whose legal range is narrower than their width) -------------
            l_buf_ok_mask = `BB_LOAD_BUF_ALLOWED;
            s_buf_ok_mask = `BB_STORE_BUF_ALLOWED;
            wmode_ok_mask = `BB_BGEMM_WMODE_ALLOWED;
            dest_ok_mask = `BB_REQUANT_DEST_ALLOWED;
            mode_ok_mask = `BB_POOL_MODE_ALLOWED;
            unit_ok_mask = `BB_SYNC_UNIT_ALLOWED;
            range_load = !l_buf_ok_mask[l_buf]
                         || l_rows < `BB_LOAD_ROWS_MIN || l_len < `BB_LOAD_LEN_MIN;
            range_store = !s_buf_ok_mask[s_buf]
                         || s_rows < `BB_STORE_ROWS_MIN || s_len < `BB_STORE_LEN_MIN;
            range_bgemm = !wmode_ok_mask[g_wmode]
                         || g_kbits < `BB_BGEMM_KBITS_MIN || g_kbits > `BB_BGEMM_KBITS_MAX
                         || g_mbits < `BB_BGEMM_MBITS_MIN || g_mbits > `BB_BGEMM_MBITS_MAX
                         || g_oh < `BB_BGEMM_OH_MIN || g_ow < `BB_BGEMM_OW_MIN
                         || g_kh < `BB_BGEMM_KH_MIN || g_kw < `BB_BGEMM_KW_MIN
                         || g_str < `BB_BGEMM_STRIDE_MIN || g_dil < `BB_BGEMM_DIL_MIN
                         || g_cw < `BB_BGEMM_CW_MIN || g_ct < `BB_BGEMM_CTILES_MIN;
            range_requant = !dest_ok_mask[r_dest]
                         || r_n < `BB_REQUANT_N_MIN || r_kout > `BB_REQUANT_KOUT_MAX
                         || r_shift > `BB_REQUANT_SHIFT_MAX || r_rk > `BB_REQUANT_RK_MAX;
            range_pool = !mode_ok_mask[p_mode]
                         || p_k < `BB_POOL_K_MIN || p_k > `BB_POOL_K_MAX
                         || p_oh < `BB_POOL_OH_MIN || p_ow < `BB_POOL_OW_MIN
                         || p_kh < `BB_POOL_KH_MIN || p_kw < `BB_POOL_KW_MIN || p_str < `BB_POOL_STRIDE_MIN;
            range_sync = !unit_ok_mask[y_unit];
            range_bad = (is_load && range_load) | (is_store && range_store) | (is_bgemm && range_bgemm)
                       | (is_requant && range_requant) | (is_pool && range_pool) | (is_sync && range_sync);
            // ---- executing unit and token flags ---------------------------------------------------------------
            unit_w = is_load ? `BB_OP_LOAD_UNIT : is_store ? `BB_OP_STORE_UNIT : is_sync ? y_unit
                    : `BB_UNIT_COMPUTE;
            legal_flags = (unit_w == `BB_UNIT_LOAD) ? `BB_UNIT_LOAD_FLAGS
                               : (unit_w == `BB_UNIT_STORE) ? `BB_UNIT_STORE_FLAGS : `BB_UNIT_COMPUTE_FLAGS;
            token_bad = |(flags & ~legal_flags);
            // ---- cross-field rules (isa.validate._rules_*) ----------------------------------------------------
            l_width = {2'b0, l_pl} + {2'b0, l_len} + {2'b0, l_pr};
            l_sstep = (l_sstr != 16'd0) ? {2'b0, l_sstr} : l_width;
            l_rowst = {9'b0, l_pt} + {1'b0, l_rows} + {9'b0, l_pb};
            s_sstep = (s_sstr != 16'd0) ? s_sstr : s_len;
            l_ebytes = (l_buf == `BB_BUF_WGT) ? E_WGT : (l_buf == `BB_BUF_CONST) ? E_CONST : E_INP;
            s_ebytes = (s_buf == `BB_BUF_ACC) ? E_ACC : E_OUT;
            s_rowbytes = {48'b0, s_len} * {52'b0, s_ebytes};
            p_pixels = {12'b0, p_oh} * {12'b0, p_ow};
            r_top = (9'd1 << r_kout) - 9'd1;
            cross_load = (l_sstr != 16'd0) && ({2'b0, l_sstr} < l_width);
            cross_store = ((s_sstr != 16'd0) && (s_sstr < s_len))
                         || ((s_rows > 16'd1) && ({32'b0, s_dstr} < s_rowbytes));
            cross_bgemm = (g_wmode == `BB_WMODE_EQUAL) && (g_mbits != 4'd2);
            cross_requant = ({28'b0, r_slice} >= SLICES)
                         || (r_res && r_rk == 4'd0)
                         || (r_dest == `BB_DEST_OUT && (r_kout == 4'd0 || r_lo > r_hi || {1'b0, r_hi} > r_top
                                                        || (r_n > 16'd1 && r_ostr < {12'b0, r_kout})));
            cross_pool = ({28'b0, p_slice} >= SLICES)
                         || (p_mode == `BB_MODE_MAX && p_pixels > 24'd1 && p_ostr < {12'b0, p_k});
            cross_bad = (is_load && cross_load) | (is_store && cross_store) | (is_bgemm && cross_bgemm)
                       | (is_requant && cross_requant) | (is_pool && cross_pool);
            // ---- extents (isa.validate.access_ranges hulls; `last` is inclusive) --------------------------------
            // load: DRAM read, then the buffer write
            l_dram_last = {32'b0, l_dram} + ({48'b0, l_rows} - 64'd1) * {32'b0, l_dstr}
                                + {48'b0, l_len} * {52'b0, l_ebytes} - 64'd1;
            l_buf_last = {48'b0, l_sram} + ({47'b0, l_rowst} - 64'd1) * {46'b0, l_sstep}
                                + {46'b0, l_width} - 64'd1;
            l_entries = (l_buf == `BB_BUF_WGT) ? WGT_ENTRIES : (l_buf == `BB_BUF_CONST) ? CONST_ENTRIES
                                : INP_ENTRIES;
            // store: the buffer read, then the DRAM write
            s_buf_last = {48'b0, s_sram} + ({48'b0, s_rows} - 64'd1) * {48'b0, s_sstep}
                                + {48'b0, s_len} - 64'd1;
            s_dram_last = {32'b0, s_dram} + ({48'b0, s_rows} - 64'd1) * {32'b0, s_dstr}
                                + s_rowbytes - 64'd1;
            s_entries = (s_buf == `BB_BUF_ACC) ? ACC_ENTRIES : OUT_ENTRIES;
            // bgemm: INP, WGT, ACC
            g_rows = ({52'b0, g_oh} - 64'd1) * {60'b0, g_str} + ({60'b0, g_kh} - 64'd1) * {60'b0, g_dil};
            g_cols = ({52'b0, g_ow} - 64'd1) * {60'b0, g_str} + ({60'b0, g_kw} - 64'd1) * {60'b0, g_dil};
            g_inp_last = {48'b0, g_inp} + g_rows * {48'b0, g_irow} + g_cols * {48'b0, g_ipix}
                               + {52'b0, g_cw} * {60'b0, g_kbits} - 64'd1;
            g_wgt_last = {48'b0, g_wgt} + {56'b0, g_ct} * {60'b0, g_kh} * {60'b0, g_kw} * {52'b0, g_cw}
                                 * {60'b0, g_mbits} - 64'd1;
            g_acc_last = {48'b0, g_acc} + {56'b0, g_ct} * {52'b0, g_oh} * {52'b0, g_ow} - 64'd1;
            // requant: ACC, CONST, INP (residual), OUT
            r_acc_last = {48'b0, r_acc} + {48'b0, r_n} - 64'd1;
            r_inp_last = {48'b0, r_rinp} + ({48'b0, r_n} - 64'd1) * {48'b0, r_rstr} + {60'b0, r_rk} - 64'd1;
            r_out_last = {48'b0, r_out} + ({48'b0, r_n} - 64'd1) * {48'b0, r_ostr} + {60'b0, r_kout} - 64'd1;
            // pool: INP, then OUT (max) or ACC (sum)
            p_rows = ({52'b0, p_oh} - 64'd1) * {60'b0, p_str} + {60'b0, p_kh} - 64'd1;
            p_cols = ({52'b0, p_ow} - 64'd1) * {60'b0, p_str} + {60'b0, p_kw} - 64'd1;
            p_inp_last = {48'b0, p_inp} + p_rows * {48'b0, p_irow} + p_cols * {48'b0, p_ipix}
                               + {60'b0, p_k} - 64'd1;
            p_out_last = {48'b0, p_out} + ({40'b0, p_pixels} - 64'd1) * {48'b0, p_ostr} + {60'b0, p_k} - 64'd1;
            p_acc_last = {48'b0, p_acc} + {40'b0, p_pixels} - 64'd1;
            dsize = {31'b0, dram_size};
            l_dram_bad = (l_dram_last >= 64'h1_0000_0000) || (l_dram_last >= dsize);
            s_dram_bad = (s_dram_last >= 64'h1_0000_0000) || (s_dram_last >= dsize);
            l_buf_bad = l_buf_last >= l_entries;
            s_buf_bad = s_buf_last >= s_entries;
            g_buf_bad = (g_inp_last >= INP_ENTRIES) || (g_wgt_last >= WGT_ENTRIES) || (g_acc_last >= ACC_ENTRIES);
            r_buf_bad = (r_acc_last >= ACC_ENTRIES) || ({48'b0, r_const} >= CONST_ENTRIES)
                        || (r_res && r_rk != 4'd0 && r_inp_last >= INP_ENTRIES)
                        || (r_dest == `BB_DEST_OUT && r_kout != 4'd0 && r_out_last >= OUT_ENTRIES);
            p_buf_bad = (p_inp_last >= INP_ENTRIES)
                        || (p_mode == `BB_MODE_MAX ? (p_out_last >= OUT_ENTRIES) : (p_acc_last >= ACC_ENTRIES));
            extent_status = 
              (is_load  && l_dram_bad) ? `BB_ST_DRAM_RANGE
            : (is_load  && l_buf_bad)  ? `BB_ST_BUF_RANGE
            : (is_store && s_buf_bad)  ? `BB_ST_BUF_RANGE
            : (is_store && s_dram_bad) ? `BB_ST_DRAM_RANGE
            : ((is_bgemm && g_buf_bad) || (is_requant && r_buf_bad) || (is_pool && p_buf_bad)) ? `BB_ST_BUF_RANGE
            : `BB_ST_OK;
            finish_bad = is_finish ? !is_last : is_last;
            check = {unit_w, !known      ? `BB_ST_ILLEGAL
                           : reserved    ? `BB_ST_RESERVED
                           : range_bad   ? `BB_ST_FIELD
                           : token_bad   ? `BB_ST_TOKEN
                           : cross_bad   ? `BB_ST_FIELD
                           : (extent_status != `BB_ST_OK) ? extent_status
                           : finish_bad  ? `BB_ST_ILLEGAL
                           : `BB_ST_OK};
        end
    endfunction

    assign {unit, status} = check(word, is_last, dram_size);

    always @(posedge clk) begin
        if (en) begin
            word_q <= word;
            {unit_q, status_q} <= check(word, is_last, dram_size);
        end
    end
endmodule
