package test

p := x if {
	x = 1.1 % 1
}
