package generated

p if {
	data.a[i] = x
	x = 2
}
