package t
big := count([x | some x in numbers.range(1, 100000000)])
