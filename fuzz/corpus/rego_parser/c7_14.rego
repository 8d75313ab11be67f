package topdown.conflicts

k := "bar"
