package t
double(x) := x * 2
allowed if input.role == "admin"
r := double(input.n)
