package test.omit_result

f(__local327__) := __local327__

p if {
	data.test.omit_result.f(1)
}
