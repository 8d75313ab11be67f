package generated

p := __local0__ if {
	bits.negate(7.2, __local1__)
	__local0__ = __local1__
}
