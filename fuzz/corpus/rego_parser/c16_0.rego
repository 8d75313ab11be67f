package generated

p contains x if {
	y = 1
	x = {"foo": y | y = 1}
}
