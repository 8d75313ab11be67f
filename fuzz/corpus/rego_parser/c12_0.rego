package generated

p := "hello"
