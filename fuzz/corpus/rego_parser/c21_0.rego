package generated

p["a"] := 1

p["b"] := 2
