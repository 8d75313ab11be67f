package topdown.missing.input.value

p := __local7__ if {
	true
	__local7__ = input.deadbeef
}
