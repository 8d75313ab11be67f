package generated

p := x if {
	array.slice([1, 2, 3, 4, 5], 3, 6, __local0__)
	x = __local0__
}
