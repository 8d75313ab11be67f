package generated

p contains x if {
	__local0__ = data.c[0].x[i]
	{"a": 1, "b": x} = {"a": 1, "b": __local0__}
}
