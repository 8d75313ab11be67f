package test.l1.l2

p := true

f(__local116__) := __local116__
