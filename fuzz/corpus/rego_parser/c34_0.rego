package test.l1.l3

g(__local300__) := __local300__
