// bb_storeslot.vh: where the memory models (bb_winstore, bb_accstore, bb_outstore) keep entry `ent` of a buffer of
// NB banks: at `row * NB + bank`, row = ent / NB truncated to the banks' RAW address bits and bank = ent % NB,
// exactly the bank and row bb_banks gives it. Included inside the models' bodies, whose parameters NB and RAW
// it uses.
function [31:0] bb_slot;
    input [31:0] ent;
    reg [31:0] row;
    begin
        row = ent / NB;
        bb_slot = row[RAW-1:0] * NB + ent % NB;
    end
endfunction
