package test.l1.l2

p := true

f(__local314__) := __local314__
