

nNoOp(