package generated

p if {
	not data.a[{"b": "c"}]
}
