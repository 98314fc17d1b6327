// bb_stepnet: one evaluation of the three units' token step chains for the current cycle.
//
// Per unit the chain of one cycle is: push_prev -> push_next -> retire -> take -> pop_prev -> pop_next
// -> start (docs/timing.md section 3). A step waits on a token queue: a pop needs a token (or the
// producer's push in this very cycle), a push needs room (or the consumer's pop in this very cycle).
// Those same-cycle bypasses couple the units, so bb_sched evaluates this net a few times, each time
// feeding in the previous evaluation's pushes and pops (`push_in`, `pop_in`; all zero the first time).
// The net is monotone, so the iteration climbs to the least fixed point, which is what an event-driven
// model reaches; a dependency path crosses at most two units (load -> compute -> store or back), so three
// evaluations reach it. Token queues: 0 load->compute, 1 compute->load, 2 compute->store, 3 store->compute.
`timescale 1ns/1ps
module bb_stepnet (
    input  wire [5:0]  st,          // unit state, 2 bits per unit (bb_sched ST_*)
    input  wire [11:0] cur_flags,   // token flags of the current instruction, 4 bits per unit
    input  wire [2:0]  ppd,         // pop_prev already done for the current instruction
    input  wire [2:0]  spd,         // push_prev already done for the current instruction
    input  wire [2:0]  head_valid,  // the unit's instruction queue is non-empty
    input  wire [11:0] head_flags,  // token flags of the queue head
    input  wire [3:0]  nonempty,    // token queue holds at least one token
    input  wire [3:0]  notfull,     // token queue holds fewer than token_depth tokens
    input  wire [3:0]  push_in,     // pushes of the previous evaluation
    input  wire [3:0]  pop_in,      // pops of the previous evaluation
    output wire [3:0]  push_out,
    output wire [3:0]  pop_out,
    output wire [2:0]  retire,
    output wire [2:0]  take,
    output wire [2:0]  start,
    output wire [2:0]  pop_prev_fire,
    output wire [2:0]  push_prev_fire
);
    localparam ST_IDLE = 2'd0, ST_POP = 2'd1, ST_PUSH = 2'd3;

    // One unit's chain. Flag bits: [0] pop_prev, [1] pop_next, [2] push_prev, [3] push_next.
    // Result: {push_prev, push_next, retire, take, pop_prev, pop_next, start}.
    function [6:0] chain;
        input [1:0] s;
        input [3:0] cf;
        input       pp_done;
        input       sp_done;
        input       hv;
        input [3:0] hf;
        input       ok_pp;   // a token can be popped from the previous unit
        input       ok_pn;   // ... from the next unit
        input       ok_sp;   // a token can be pushed to the previous unit
        input       ok_sn;   // ... to the next unit
        reg in_push, sp_fire, sp_pass, sn_fire, ret, tk, in_pop, ppd_e, pp_fire, pp_pass, pn_fire, go;
        reg [3:0] f;
        begin
            in_push = (s == ST_PUSH);
            sp_fire = in_push & cf[2] & ~sp_done & ok_sp;
            sp_pass = in_push & (~cf[2] | sp_done | sp_fire);
            sn_fire = sp_pass & cf[3] & ok_sn;
            ret     = sp_pass & (~cf[3] | sn_fire);
            tk      = ((s == ST_IDLE) | ret) & hv;
            in_pop  = tk | (s == ST_POP);
            f       = tk ? hf : cf;
            ppd_e   = tk ? 1'b0 : pp_done;
            pp_fire = in_pop & f[0] & ~ppd_e & ok_pp;
            pp_pass = in_pop & (~f[0] | ppd_e | pp_fire);
            pn_fire = pp_pass & f[1] & ok_pn;
            go      = pp_pass & (~f[1] | pn_fire);
            chain   = {sp_fire, sn_fire, ret, tk, pp_fire, pn_fire, go};
        end
    endfunction

    wire [3:0] can_pop  = nonempty | push_in;
    wire [3:0] can_push = notfull | pop_in;

    // load: prev = none, next = compute (pop q1, push q0)
    wire [6:0] cl = chain(st[1:0], cur_flags[3:0], ppd[0], spd[0], head_valid[0], head_flags[3:0],
                          1'b0, can_pop[1], 1'b0, can_push[0]);
    // compute: prev = load (pop q0, push q1), next = store (pop q3, push q2)
    wire [6:0] cc = chain(st[3:2], cur_flags[7:4], ppd[1], spd[1], head_valid[1], head_flags[7:4],
                          can_pop[0], can_pop[3], can_push[1], can_push[2]);
    // store: prev = compute (pop q2, push q3), next = none
    wire [6:0] cs = chain(st[5:4], cur_flags[11:8], ppd[2], spd[2], head_valid[2], head_flags[11:8],
                          can_pop[2], 1'b0, can_push[3], 1'b0);

    assign push_out = {cs[6], cc[5], cc[6], cl[5]};
    assign pop_out  = {cc[1], cs[2], cl[1], cc[2]};
    assign retire   = {cs[4], cc[4], cl[4]};
    assign take     = {cs[3], cc[3], cl[3]};
    assign start    = {cs[0], cc[0], cl[0]};
    assign pop_prev_fire  = {cs[2], cc[2], cl[2]};
    assign push_prev_fire = {cs[6], cc[6], cl[6]};
endmodule
