package test

p if {
	data.fixture.empty[set()]
}
