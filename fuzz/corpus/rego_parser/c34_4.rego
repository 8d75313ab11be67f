package ex

foo(__local227__) := y if {
	split(__local227__, "i", y)
}

bar[x] := y if {
	data.l[_].a = x
	data.ex.foo(x, y)
}

chain0(__local228__) := y if {
	data.ex.foo(__local228__, y)
}

chain1(__local229__) := b if {
	data.ex.chain0(__local229__, b)
}

chain2 := d if {
	data.ex.chain1("fooibar", d)
}

cross(__local230__) := [a, b] if {
	split(__local230__, "i", y)
	__local27__ = y[1]
	data.ex.foo(__local27__, b)
	__local28__ = y[2]
	data.test.foo(__local28__, a)
}

falsy_func(__local231__) := false

falsy_func_else(__local232__) if {
	__local232__ = 1
}

else := false

falsy_undefined if {
	data.ex.falsy_func(1)
}

falsy_negation if {
	not data.ex.falsy_func(1)
}

falsy_else_value := __local23__ if {
	true
	data.ex.falsy_func_else(2, __local23__)
}

falsy_else_undefined if {
	data.ex.falsy_func_else(2)
}

falsy_else_negation if {
	not data.ex.falsy_func_else(2)
}

arrays([__local234__, __local235__]) := [a, b] if {
	data.ex.foo(__local234__, a)
	data.ex.foo(__local235__, b)
}

arraysrule := y if {
	data.ex.arrays(["hih", "foo"], y)
}

objects({"foo": __local236__, "bar": __local237__}) := z if {
	data.ex.foo(__local236__, a)
	data.test.foo(__local237__, b)
	z = [a, b]
}

objectsrule := y if {
	data.ex.objects({"bar": "hi ho", "foo": "hih"}, y)
}

refoutput := y if {
	data.ex.foo("hih", z)
	y = z[1]
}

void(__local238__) if {
	__local238__ = "foo"
}

voidGood if {
	not data.ex.void("bar", true)
}

voidBad if {
	data.ex.void("bar", true)
}

multi(1, __local239__) := y if {
	y = __local239__
}

multi(2, __local240__) := y if {
	__local24__ = 2 * __local240__
	a = __local24__
	__local25__ = a + 1
	y = __local25__
}

multi(3, __local241__) := y if {
	__local26__ = __local241__ * 10
	y = __local26__
}

multi("foo", __local242__) := y if {
	y = "bar"
}

multi1 := y if {
	data.ex.multi(1, 2, y)
}

multi2 := y if {
	data.ex.multi(2, 2, y)
}

multi3 := y if {
	data.ex.multi(3, 2, y)
}

multi4 := y if {
	data.ex.multi("foo", 2, y)
}

always_true_fn(__local243__) := true

always_true if {
	data.ex.always_true_fn(1)
}
