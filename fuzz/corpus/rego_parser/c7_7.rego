package topdown.a.b.c

p := [1, 2]

q := [3, 4]

r["a"] := 1

r["b"] := 2
