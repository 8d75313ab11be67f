package generated

p := result if {
	result := {
		"sum_array": sprintf("%v", [sum([18446744073709551617, 1])]),
		"sum_set": sprintf("%v", [sum({18446744073709551617, 1})]),
		"product_array": sprintf("%v", [product([18446744073709551617, 2])]),
		"sum_small": sprintf("%v", [sum([1, 2, 3])]),
		"product_small": sprintf("%v", [product([2, 3, 4])]),
		"sum_float": sprintf("%v", [sum([1.5, 2.5])]),
		"sum_mixed": sprintf("%v", [sum([1, 2.5])]),
		"product_float": sprintf("%v", [product([1.5, 2])]),
	}
}
