// tests/test_sched_formal.py: bb_sched reads `spf` (push_prev fired, from evaluation NIT-1 of the step network)
// only when the unit neither starts, takes nor retires. Output ok: evaluation LO gives the same spf there
// (LO = NIT-2 is the surviving mutant bb_sched.v:102 of docs/verification.md). Inputs are free but for the
// core's invariants below; Yosys `sat -prove ok 1` decides it for every input.
module nit_check #(parameter LO = 1, parameter STORE_NO_PUSH_NEXT = 1) (
    input  wire [5:0]  st, input wire [11:0] cur_flags, input wire [2:0] ppd, input wire [2:0] spd,
    input  wire [2:0]  hv, input wire [11:0] hflags, input wire [3:0] nonempty, input wire [3:0] notfull,
    output wire        ok
);
    localparam NIT = 3;
    wire [4*(NIT+1)-1:0] xpush, xpop;
    wire [3*NIT-1:0] n_retire, n_take, n_start, n_ppf, n_spf;
    assign xpush[3:0] = 4'b0;
    assign xpop[3:0]  = 4'b0;
    genvar it;
    generate for (it = 0; it < NIT; it = it + 1) begin : g
        bb_stepnet net (.st(st), .cur_flags(cur_flags), .ppd(ppd), .spd(spd), .head_valid(hv), .head_flags(hflags),
            .nonempty(nonempty), .notfull(notfull), .push_in(xpush[4*it +: 4]), .pop_in(xpop[4*it +: 4]),
            .push_out(xpush[4*(it+1) +: 4]), .pop_out(xpop[4*(it+1) +: 4]), .retire(n_retire[3*it +: 3]),
            .take(n_take[3*it +: 3]), .start(n_start[3*it +: 3]), .pop_prev_fire(n_ppf[3*it +: 3]),
            .push_prev_fire(n_spf[3*it +: 3]));
    end endgenerate
    wire [2:0] last  = n_spf[3*(NIT-1) +: 3];
    wire [2:0] other = n_spf[3*LO +: 3];
    wire [2:0] held  = ~(n_start[3*(NIT-1) +: 3] | n_take[3*(NIT-1) +: 3] | n_retire[3*(NIT-1) +: 3]);
    // the core's invariants: a full token queue is not empty (TOKEN_DEPTH >= 1); a STORE never holds push_next
    // (the decoder refuses it: status TOKEN, and fetch dispatches only words with status OK)
    wire inv = ((notfull | nonempty) == 4'hf) && (!STORE_NO_PUSH_NEXT || (!cur_flags[11] && !hflags[11]));
    assign ok = !inv || ((last ^ other) & held) == 3'b0;
endmodule
